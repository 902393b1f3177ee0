// mlplab draw-a-digit page: strokes on a canvas → POST api/predict → bars and the 28×28 input.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen");
const seenCtx = seen.getContext("2d");
const $ = (id) => document.getElementById(id);

const LINE_WIDTH = 18; // canvas pixels on the 280-px pad: MNIST-like strokes after scaling
const DEBOUNCE_MS = 120;

let strokes = []; // each stroke: [[x, y], …] in canvas pixels
let current = null;
let background = null; // an uploaded image drawn under the strokes
let uploaded = null; // the uploaded File, predicted as it is until the user draws on it
let timer = null;
let sent = 0; // request sequence number; answers to older requests are dropped
let shown = 0;

// ------------------------------------------------------------------ bars

const bars = [];
for (let d = 0; d < 10; d++) {
  const row = document.createElement("div");
  row.className = "row";
  row.innerHTML = `<span class="d">${d}</span><span class="track"><span class="fill"></span></span>` +
    `<span class="p">–</span>`;
  const [label, track, p] = row.children;
  $("bars").append(label, track, p);
  bars.push({ label, track, fill: track.firstChild, p });
}

function showProbabilities(probs, digit) {
  probs.forEach((v, d) => {
    const b = bars[d];
    b.fill.style.width = `${(100 * v).toFixed(1)}%`;
    b.p.textContent = `${(100 * v).toFixed(1)}%`;
    b.label.classList.toggle("top", d === digit);
    b.track.classList.toggle("top", d === digit);
  });
}

function resetResult() {
  $("digit").textContent = "–";
  $("confidence").innerHTML = "&nbsp;";
  bars.forEach((b) => {
    b.fill.style.width = "0";
    b.p.textContent = "–";
    b.label.classList.remove("top");
    b.track.classList.remove("top");
  });
  seenCtx.clearRect(0, 0, 28, 28);
  setStatus("");
}

function showSeen(pixels) {
  const img = seenCtx.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const g = Math.round(255 * v);
    img.data.set([g, g, g, 255], 4 * i);
  });
  seenCtx.putImageData(img, 0, 0);
}

function setStatus(text, isError = false) {
  const s = $("status");
  s.textContent = text || "\u00a0";
  s.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ drawing

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (background) {
    const scale = Math.min(pad.width / background.width, pad.height / background.height);
    const w = background.width * scale, h = background.height * scale;
    ctx.drawImage(background, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  }
  ctx.strokeStyle = "#111";
  ctx.fillStyle = "#111";
  ctx.lineWidth = LINE_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const s of strokes) {
    if (s.length === 1) { // a dot
      ctx.beginPath();
      ctx.arc(s[0][0], s[0][1], LINE_WIDTH / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.beginPath();
    ctx.moveTo(s[0][0], s[0][1]);
    for (const [x, y] of s.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }
  const empty = strokes.length === 0 && !background && !uploaded;
  $("hint").classList.toggle("hidden", !empty);
  $("undo").disabled = strokes.length === 0;
  $("clear").disabled = empty;
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  current = [point(e)];
  strokes.push(current);
  uploaded = null; // from now on the canvas itself is what we predict
  redraw();
});

pad.addEventListener("pointermove", (e) => {
  if (!current) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) current.push(point(ev));
  redraw();
  schedule();
});

function endStroke() {
  if (!current) return;
  current = null;
  predictNow();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => {
  strokes.pop();
  redraw();
  predictNow();
});

$("clear").addEventListener("click", () => {
  strokes = [];
  background = null;
  uploaded = null;
  redraw();
  predictNow();
});

// ------------------------------------------------------------------ uploads

$("file").addEventListener("change", (e) => {
  if (e.target.files.length) useFile(e.target.files[0]);
  e.target.value = "";
});

const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault();
  drop.classList.add("dragging");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("dragging")));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  const file = e.dataTransfer.files[0];
  if (file) useFile(file);
});
// A file dropped next to the pad must not navigate away from the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

function useFile(file) {
  strokes = [];
  background = null;
  uploaded = file;
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    background = img;
    redraw();
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url); // the server says what is wrong with it
  img.src = url;
  redraw();
  predictNow();
}

// ------------------------------------------------------------------ predicting

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(predictNow, DEBOUNCE_MS);
}

async function predictNow() {
  clearTimeout(timer);
  const seq = ++sent;
  if (!uploaded && strokes.length === 0 && !background) {
    shown = seq;
    resetResult();
    document.body.dataset.state = "idle";
    return;
  }
  document.body.dataset.state = "busy"; // "idle" once the newest request is answered
  let init;
  if (uploaded) {
    const form = new FormData();
    form.append("file", uploaded, uploaded.name);
    init = { method: "POST", body: form };
  } else {
    init = {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: pad.toDataURL("image/png") }),
    };
  }
  try {
    const response = await fetch("api/predict?preprocessed=1", init);
    const answer = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (seq < shown) return; // a newer answer is already on screen
    shown = seq;
    if (!response.ok) {
      resetResult();
      setStatus(answer.detail || `HTTP ${response.status}`, true);
      return;
    }
    $("digit").textContent = answer.digit;
    const p = answer.probabilities[answer.digit];
    $("confidence").textContent = `${(100 * p).toFixed(1)}% sure`;
    showProbabilities(answer.probabilities, answer.digit);
    if (answer.preprocessed) showSeen(answer.preprocessed);
    setStatus(`answered in ${answer.ms.toFixed(1)} ms on the server`);
    document.body.dataset.predictions = String(Number(document.body.dataset.predictions || 0) + 1);
  } catch (err) {
    if (seq >= shown) setStatus(`the server did not answer (${err.message})`, true);
  } finally {
    if (seq === sent) document.body.dataset.state = "idle";
  }
}

// ------------------------------------------------------------------ the model

async function loadModel() {
  try {
    const m = await (await fetch("api/model")).json();
    const c = m.config || {};
    const parts = [];
    if (c.layers) parts.push(`${c.layers.join("-")} ${c.activation || ""}`.trim());
    if (m.parameters) parts.push(`${m.parameters.toLocaleString("en")} parameters`);
    if (typeof m.test_accuracy === "number") parts.push(`test accuracy ${(100 * m.test_accuracy).toFixed(1)}%`);
    if (m.data && m.data.name) parts.push(`trained on ${m.data.name}`);
    const name = document.createElement("strong");
    name.textContent = m.run; // text only: nothing from the server becomes HTML
    $("model").replaceChildren("Model: ", name, parts.length ? ` · ${parts.join(" · ")}` : "");
    $("version").textContent = m.mlplab || "";
  } catch (err) {
    $("model").textContent = "Could not load the model description.";
  }
}

redraw();
resetResult();
loadModel();
