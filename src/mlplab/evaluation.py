"""Evaluating a run: per-class figures, confusion, confident mistakes, calibration, reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.errors import DataError, RunError

NUM_CLASSES = 10


@dataclass
class Evaluation:
    """Every figure of ``evaluation.json``; images are made from it on demand."""

    accuracy: float
    loss: float
    per_class: list[dict]
    confusion: list[list[int]]
    ece: float
    reliability: list[dict]
    mistakes: list[dict]
    data: dict

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "per_class": self.per_class,
                "confusion": self.confusion, "ece": self.ece, "reliability": self.reliability,
                "mistakes": self.mistakes, "data": self.data}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y_true.astype(int), y_pred.astype(int)), 1)
    return m


def per_class_scores(confusion: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn)."""
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return [{"class": c, "precision": float(precision[c]), "recall": float(recall[c]),
             "f1": float(f1[c]), "support": int(support[c])} for c in range(len(tp))]


def calibration(probs: np.ndarray, y_true: np.ndarray, bins: int = 10
                ) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width confidence bins, and the bins."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        n = int(inside.sum())
        acc = float(correct[inside].mean()) if n else 0.0
        conf = float(confidence[inside].mean()) if n else 0.0
        ece += n / len(y_true) * abs(acc - conf)
        table.append({"low": float(lo), "high": float(hi), "count": n, "accuracy": acc,
                      "confidence": conf})
    return float(ece), table


def evaluate_probs(probs: np.ndarray, y_true: np.ndarray, *, data: dict | None = None,
                   mistakes: int = 24) -> Evaluation:
    """All figures from predicted probabilities (n, 10) and true labels (n,)."""
    y_pred = probs.argmax(1)
    confusion = confusion_matrix(y_true, y_pred)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    wrong = np.nonzero(y_pred != y_true)[0]
    worst = wrong[np.argsort(-probs[wrong, y_pred[wrong]])][:mistakes]
    ece, reliability = calibration(probs, y_true)
    return Evaluation(
        accuracy=float((y_pred == y_true).mean()),
        loss=float(-np.log(p_true).mean()),
        per_class=per_class_scores(confusion),
        confusion=confusion.tolist(),
        ece=ece,
        reliability=reliability,
        mistakes=[{"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]),
                   "probability": float(probs[i, y_pred[i]])} for i in worst],
        data=data or {},
    )


def check_model_fits(model, dataset, *, where: str) -> None:
    """A one-line DataError unless ``model`` (a :class:`mlplab.inference.Forward`) takes
    ``dataset``'s images and gives 10 classes."""
    inputs = model.inputs
    pixels = int(np.prod(dataset.x_test.shape[1:]))
    if inputs != pixels:
        raise DataError(f"the model in {where} takes {inputs} inputs but {dataset.name} has "
                        f"{pixels}-pixel images; evaluate it on data of its own image size")
    outputs = model.outputs
    if outputs != NUM_CLASSES:
        raise DataError(f"the model in {where} predicts {outputs} classes, not the "
                        f"{NUM_CLASSES} digits of {dataset.name}")


def evaluate_model(model, dataset, *, where: str = "the run") -> Evaluation:
    """All figures of ``model`` (a Keras model, or a :class:`mlplab.inference.Forward`) on
    ``dataset``'s test split."""
    from mlplab.data import prepare
    from mlplab.inference import Forward, keras_forward

    forward = model if isinstance(model, Forward) else keras_forward(model)
    check_model_fits(forward, dataset, where=where)
    probs = forward(prepare(dataset.x_test).reshape(len(dataset.x_test), -1))
    info = {"name": dataset.name, "sha256": dataset.sha256, "test_size": len(dataset.x_test)}
    return evaluate_probs(probs, dataset.y_test.astype(int), data=info)


def evaluate_run(run_path: str | Path, *, data: str | None = None) -> tuple[Evaluation, object]:
    """Evaluate a run's model on the test split of ``data`` (default: the run's own).

    A run validated on half of its test set (``test-half``, as tuning trials are) is
    evaluated on the other, unseen half of its own data by default.
    """
    from mlplab.data import load_dataset
    from mlplab.inference import load_forward
    from mlplab.runs import open_run

    run = open_run(run_path)
    model = load_forward(run.model_path)  # (mlplab's own models without starting Keras)
    dataset = load_dataset(data or run.config.data)
    if data is None and run.config.validation == "test-half":
        dataset = dataset.unseen_test_half()
    return evaluate_model(model, dataset, where=str(run.path)), dataset


STYLE_RATIO = 0.97  # of the plain accuracy: clearly below it, a style is a weak spot


def wilson_interval(right: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% (Wilson score) interval of an accuracy of ``right`` out of ``n``."""
    if n == 0:
        return 0.0, 1.0
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass
class StyleAccuracy:
    """The model's accuracy on people's kinds of image (:mod:`mlplab.userstyle`): the same
    test digits photographed, scanned, drawn in an app…, each through
    :mod:`mlplab.preprocess`, against its accuracy on those digits as they are."""

    digits: int  # test digits drawn in each style
    plain_accuracy: float
    styles: list[dict]  # {"style", "accuracy", "interval", "ratio", "failed"}, in order
    examples: list[dict]  # an image of each style: {"style", "file", "seen", "predicted",
    #                       "true"} (the file's bytes, the 28×28 input or None)

    def below_target(self) -> list[str]:
        """The styles whose accuracy is clearly (its whole 95% interval) under STYLE_RATIO
        of the plain accuracy: with a few dozen digits a style, one digit is 2-5%."""
        return [s["style"] for s in self.styles
                if s["interval"][1] < STYLE_RATIO * self.plain_accuracy]

    def to_dict(self) -> dict:
        return {"digits_per_style": self.digits, "plain_accuracy": self.plain_accuracy,
                "ratio_target": STYLE_RATIO, "styles_below_target": self.below_target(),
                "styles": self.styles}


def style_inputs(job: tuple) -> tuple[np.ndarray, np.ndarray, bytes]:
    """One style's images of the digits, preprocessed as ``mlplab predict`` does: the
    (n, 28, 28) inputs (zeros where it gave up), which succeeded, and the ``example``-th
    file. ``job`` is (name, make, k, digits, example); the style's random stream is seeded
    with its index k, so that the images are the same each time. Runs in worker processes
    too."""
    from mlplab.errors import ImageError
    from mlplab.preprocess import preprocess_bytes

    name, make, k, digits, example = job
    rng = np.random.default_rng(k)
    inputs = np.zeros((len(digits), 28, 28), np.float32)
    ok = np.zeros(len(digits), bool)
    kept = b""
    for i, d in enumerate(digits):
        data = make(d, rng)
        if i == example:
            kept = data
        try:
            inputs[i] = preprocess_bytes(data, name=name)
            ok[i] = True
        except ImageError:
            pass
    return inputs, ok, kept


def evaluate_styles(model, dataset, *, per_style: int = 50, styles: dict | None = None,
                    jobs: int | None = None, progress=None) -> StyleAccuracy:
    """``model`` (a :class:`mlplab.inference.Forward`) on ``per_style`` test digits, spread
    over the test set, in every user style: the image file a person would send is made
    from each digit, preprocessed as ``mlplab predict`` does (an image the preprocessing
    gives up on counts as wrong) and predicted. The styles are made on ``jobs`` processes
    (default: every core; ``styles`` of your own must then pickle: module-level
    functions); ``progress(done, total)`` after each style."""
    from mlplab.data import prepare
    from mlplab.prediction import map_in_processes
    from mlplab.userstyle import STYLES

    styles = STYLES if styles is None else styles
    if per_style < 1:
        raise DataError("--per-style must be at least 1")
    check_model_fits(model, dataset, where="the run")
    n = len(dataset.x_test)
    idx = np.unique(np.linspace(0, n - 1, min(per_style, n)).round().astype(int))
    digits, labels = dataset.x_test[idx], dataset.y_test[idx].astype(int)
    plain = float((model(prepare(digits).reshape(len(idx), -1)).argmax(1) == labels).mean())
    jobs_list = [(name, make, k, digits, k % len(idx))  # (a different digit each style)
                 for k, (name, make) in enumerate(styles.items())]
    made = map_in_processes(style_inputs, jobs_list, jobs=jobs, progress=progress)
    rows, examples = [], []
    for (name, _, _, _, i), (inputs, ok, file) in zip(jobs_list, made, strict=True):
        predicted = model(inputs.reshape(len(idx), -1)).argmax(1)
        right = int(((predicted == labels) & ok).sum())
        accuracy = right / len(idx)
        rows.append({"style": name, "accuracy": accuracy,
                     "interval": list(wilson_interval(right, len(idx))),
                     "ratio": accuracy / plain if plain > 0 else None,
                     "failed": int((~ok).sum())})
        examples.append({"style": name, "file": file, "seen": inputs[i] if ok[i] else None,
                         "predicted": int(predicted[i]) if ok[i] else None,
                         "true": int(labels[i])})
    return StyleAccuracy(len(idx), plain, rows, examples)


def styles_png(result: StyleAccuracy) -> bytes:
    """An image of each style as sent (small) beside what the model sees, with the style's
    ratio: where people's images lose accuracy, and why, at a glance."""
    from PIL import Image, ImageDraw, ImageOps

    from mlplab.errors import ImageError
    from mlplab.preprocess import decode_image, to_grey

    cols, thumb, caption = 6, 72, 30
    cell_w, cell_h = 2 * thumb + 12, thumb + caption + 8
    rows = max(1, -(-len(result.examples) // cols))
    canvas = Image.new("RGB", (cols * cell_w + 8, rows * cell_h + 30), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    below = set(result.below_target())
    draw.text((8, 6), f"people's kinds of image: as sent | what the model sees "
                      f"(accuracy / plain {result.plain_accuracy:.3f}; red: clearly under "
                      f"{STYLE_RATIO})", fill="black", font=_font(13))
    for k, (ex, row) in enumerate(zip(result.examples, result.styles, strict=True)):
        x, y = 8 + (k % cols) * cell_w, 30 + (k // cols) * cell_h
        try:  # (transparency shown on grey: white and black ink both stay visible)
            sent = decode_image(ex["file"])
            if sent.mode.startswith(("I", "F")):  # 16-bit grey: scaled as the pipeline does
                sent = Image.fromarray((to_grey(sent) * 255).astype(np.uint8))
            sent = ImageOps.contain(sent.convert("RGBA"), (thumb, thumb))
            sent = Image.alpha_composite(Image.new("RGBA", sent.size, (160, 160, 160, 255)),
                                         sent).convert("RGB")
            canvas.paste(sent, (x + (thumb - sent.width) // 2, y + (thumb - sent.height) // 2))
        except ImageError:
            pass
        if ex["seen"] is not None:
            seen = Image.fromarray((ex["seen"] * 255).astype(np.uint8)).resize(
                (thumb, thumb), Image.Resampling.NEAREST)
            canvas.paste(seen, (x + thumb + 4, y))
        ratio = row["ratio"]
        weak = row["style"] in below
        draw.text((x, y + thumb + 2), row["style"][:26], fill="black", font=font)
        got = "failed" if ex["predicted"] is None else f"{ex['true']}->{ex['predicted']}"
        draw.text((x, y + thumb + 15), f"{'-' if ratio is None else f'{ratio:.2f}'}  {got}",
                  fill="#b02020" if weak else "#206020", font=font)
    return _png(canvas)


def write_styles(result: StyleAccuracy, out: str | Path) -> bytes:
    """styles.json and styles.png in ``out``; returns the PNG."""
    from mlplab.runs import write_bytes, write_text

    out = Path(out)
    png = styles_png(result)
    write_bytes(out / "styles.png", png)
    write_text(out / "styles.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return png


def write_run_panels(run_path: str | Path, model, dataset) -> Evaluation:
    """After training: the evaluation panels (JSON, HTML, PNGs) in the run directory."""
    evaluation = evaluate_model(model, dataset, where=str(run_path))
    write_evaluation(evaluation, dataset.x_test, Path(run_path),
                     title=f"Evaluation of {run_path}")
    return evaluation


# ---------------------------------------------------------------- pictures and files


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _png(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def confusion_png(confusion: list[list[int]]) -> bytes:
    """Heat maps of the confusion matrix: counts and row-normalized (drawn with Pillow,
    which is ~50× faster than matplotlib for 200 labelled cells)."""
    from PIL import Image, ImageDraw

    m = np.asarray(confusion)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    cell, margin, gap = 44, 48, 40
    width = 2 * (margin + 10 * cell) + gap
    canvas = Image.new("RGB", (width, margin + 10 * cell + 30), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = _font(14), _font(12)
    for panel, (values, title) in enumerate(((m, "counts"),
                                             (norm, "row-normalized (recall)"))):
        x0 = panel * (margin + 10 * cell + gap) + margin
        draw.text((x0, 6), f"{title}: rows = true, columns = predicted", fill="black",
                  font=font)
        for k in range(10):
            draw.text((x0 + k * cell + cell // 2 - 4, margin - 18), str(k), fill="black",
                      font=font)
            draw.text((x0 - 16, margin + k * cell + cell // 2 - 8), str(k), fill="black",
                      font=font)
        for i in range(10):
            for j in range(10):
                level = float(norm[i, j])
                colour = tuple(int(255 - level * (255 - c)) for c in (24, 82, 160))
                box = (x0 + j * cell, margin + i * cell, x0 + (j + 1) * cell - 1,
                       margin + (i + 1) * cell - 1)
                draw.rectangle(box, fill=colour)
                v = values[i, j]
                if v:
                    text = f"{v:d}" if values is m else f"{v:.2f}"
                    draw.text((box[0] + 4, box[1] + cell // 2 - 7), text, font=small,
                              fill="white" if level > 0.5 else "#223")
    return _png(canvas)


def mistakes_png(mistakes: list[dict], images: np.ndarray) -> bytes:
    """The most confident mistakes: image, true label, predicted label and probability."""
    from PIL import Image, ImageDraw

    cols = 8
    tile, label = 84, 34
    rows = max(1, -(-len(mistakes) // cols))
    canvas = Image.new("RGB", (cols * (tile + 8) + 8, rows * (tile + label + 8) + 30), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    draw.text((8, 6), "most confident mistakes (true -> predicted, probability)", fill="black",
              font=_font(14))
    if not mistakes:
        draw.text((8, 40), "no mistakes", fill="black", font=font)
    for k, m in enumerate(mistakes):
        x = 8 + (k % cols) * (tile + 8)
        y = 30 + (k // cols) * (tile + label + 8)
        digit = Image.fromarray(np.asarray(images[m["index"]], np.uint8)).resize(
            (tile, tile), Image.Resampling.NEAREST)
        canvas.paste(digit, (x, y))
        draw.text((x, y + tile + 2), f"true {m['true']} -> {m['predicted']}", fill="black",
                  font=font)
        draw.text((x, y + tile + 17), f"{m['probability']:.0%}", fill="#b02020", font=font)
    return _png(canvas)


def reliability_png(reliability: list[dict], ece: float) -> bytes:
    """Reliability diagram: accuracy per confidence bin (bars) against the diagonal, each
    bin's mean confidence (red tick) and count; drawn with Pillow like the heat map (a
    matplotlib figure would cost ~0.15 s after every training run)."""
    from PIL import Image, ImageDraw

    size, left, top, bottom = 340, 62, 34, 74
    canvas = Image.new("RGB", (left + size + 20, top + size + bottom), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = _font(13), _font(11)

    def xy(confidence: float, accuracy: float) -> tuple[float, float]:
        return left + confidence * size, top + (1 - accuracy) * size

    draw.text((left, 8), f"reliability (ECE {ece:.3f})", fill="black", font=_font(14))
    for k in range(6):
        v = k / 5
        x, y = xy(v, v)
        draw.line([(x, top + size), (x, top + size + 4)], fill="black")
        draw.text((x - 9, top + size + 6), f"{v:.1f}", fill="black", font=small)
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((left - 26, y - 7), f"{v:.1f}", fill="black", font=small)
        draw.line([(left + 1, y), (left + size, y)], fill="#eeeeee")
    for b in reliability:
        if not b["count"]:
            continue
        x0, y0 = xy(b["low"], b["accuracy"])
        x1, base = xy(b["high"], 0.0)
        draw.rectangle((x0 + 2, y0, x1 - 2, base), fill="#4a7bd0")
        cy = xy(0, b["confidence"])[1]
        draw.line([(x0 + 2, cy), (x1 - 2, cy)], fill="#c02020", width=2)
        draw.text((x0 + 3, base - 14), f"{b['count']}", fill="white", font=_font(9))
    for k in range(0, size, 8):  # the diagonal of perfect calibration, dashed
        draw.line([xy(k / size, k / size), xy((k + 4) / size, (k + 4) / size)], fill="black")
    draw.rectangle((left, top, left + size, top + size), outline="black")
    draw.text((left + size / 2 - 80, top + size + 22), "confidence (top probability)",
              fill="black", font=font)
    label = Image.new("RGB", (80, 16), "white")
    ImageDraw.Draw(label).text((6, 0), "accuracy", fill="black", font=font)
    canvas.paste(label.rotate(90, expand=True), (6, int(top + size / 2 - 40)))
    draw.text((left, top + size + 42), "bars: accuracy of the digits in each confidence bin "
              "(count at the foot)\nred: their mean confidence; dashed: perfect calibration",
              fill="#333333", font=small)
    return _png(canvas)


def write_evaluation(evaluation: Evaluation, images: np.ndarray, out: str | Path,
                     *, title: str, styles: StyleAccuracy | None = None) -> dict[str, bytes]:
    """evaluation.json, the three PNGs and a self-contained evaluation.html in ``out``; with
    ``styles`` also styles.json and styles.png, and a section of the page for them."""
    from mlplab.reports import html_page, html_table, img
    from mlplab.runs import write_bytes, write_text

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a directory for the evaluation files")
    pngs = {"confusion.png": confusion_png(evaluation.confusion),
            "mistakes.png": mistakes_png(evaluation.mistakes, images),
            "reliability.png": reliability_png(evaluation.reliability, evaluation.ece)}
    for name, png in pngs.items():
        write_bytes(out / name, png)
    write_text(out / "evaluation.json", json.dumps(evaluation.to_dict(), indent=2) + "\n")
    rows = [[c["class"], f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
             c["support"]] for c in evaluation.per_class]
    confusion_rows = [[i, *row] for i, row in enumerate(evaluation.confusion)]
    page = html_page(title, [
        ("", f"<p>Data: {evaluation.data.get('name', '?')}, "
             f"{evaluation.data.get('test_size', '?')} test images. Accuracy "
             f"<b>{evaluation.accuracy:.4f}</b>, loss {evaluation.loss:.4f}, expected "
             f"calibration error {evaluation.ece:.4f}.</p>"),
        ("Per class", html_table(["class", "precision", "recall", "F1", "support"], rows)),
        ("Confusion matrix", img(pngs["confusion.png"], "confusion matrix heat maps") +
         html_table(["true \\ predicted", *range(10)], confusion_rows)),
        ("Most confident mistakes", img(pngs["mistakes.png"], "most confident mistakes")),
        ("Calibration", img(pngs["reliability.png"], "reliability diagram")),
        *([] if styles is None else
          [("People's kinds of image", styles_section(styles, write_styles(styles, out)))]),
    ])
    write_text(out / "evaluation.html", page)
    return pngs


def styles_section(styles: StyleAccuracy, png: bytes) -> str:
    """evaluation.html's part for ``--styles``: what was measured, the table, the picture
    (``png``, from :func:`styles_png`)."""
    import html

    from mlplab.reports import html_table, img

    weak = styles.below_target()
    rows = [[s["style"], f"{s['accuracy']:.3f}",
             f"{s['interval'][0]:.3f}–{s['interval'][1]:.3f}",
             "–" if s["ratio"] is None else f"{s['ratio']:.3f}", s["failed"]]
            for s in styles.styles]
    return (f"<p>{styles.digits} test digits drawn in each of {len(styles.styles)} styles "
            f"of image people send (mlplab.userstyle), each through mlplab predict's "
            f"preprocessing. Plain accuracy on the same digits: "
            f"<b>{styles.plain_accuracy:.4f}</b>. Clearly (the whole 95% interval) under "
            f"{STYLE_RATIO}× of it: {html.escape(', '.join(weak)) if weak else 'none'}.</p>" +
            html_table(["style", "accuracy", "95% interval", "ratio", "failed"], rows) +
            img(png, "each style as sent beside what the model sees"))


@dataclass
class Samples:
    """What ``mlplab show`` shows: a grid of digits and the split's class counts."""

    png: bytes
    shown: int
    counts: list[int]
    name: str
    split: str


def show_samples(dataset, *, split: str = "train", n: int = 64,
                 label: int | None = None) -> Samples:
    """The first ``n`` digits of a split (only ``label``'s, if given) as a labelled grid."""
    from mlplab.plots import samples_grid_png

    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    x, y = (dataset.x_train, dataset.y_train) if split == "train" else \
        (dataset.x_test, dataset.y_test)
    counts = np.bincount(y.astype(int), minlength=NUM_CLASSES).tolist()
    title = f"{dataset.name} {split}"
    if label is not None:
        x, y = x[y == label], y[y == label]
        title += f", label {label}"
        if not len(x):
            raise DataError(f"{dataset.name} {split} has no digits labelled {label}")
    x, y = x[:n], y[:n]
    return Samples(png=samples_grid_png(x, y, title=title), shown=len(x), counts=counts,
                   name=dataset.name, split=split)
