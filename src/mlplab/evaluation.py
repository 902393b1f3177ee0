"""Evaluating a run: per-class figures, confusion, confident mistakes, calibration, reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplab.errors import DataError

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


def evaluate_run(run_path: str | Path, *, data: str | None = None) -> tuple[Evaluation, object]:
    """Evaluate a run's model on the test split of ``data`` (default: the run's own)."""
    from mlplab.data import load_dataset, prepare
    from mlplab.engine import predict_fn
    from mlplab.models import load_model
    from mlplab.runs import open_run

    run = open_run(run_path)
    model = load_model(run.model_path)
    dataset = load_dataset(data or run.config.data)
    pixels = int(np.prod(dataset.x_test.shape[1:]))
    if model.input_shape[-1] != pixels:
        raise DataError(f"the model in {run.path} takes {model.input_shape[-1]} inputs but "
                        f"{dataset.name} has {pixels}-pixel images; evaluate it on data of "
                        "its own image size")
    probs = predict_fn(model)(prepare(dataset.x_test))
    info = {"name": dataset.name, "sha256": dataset.sha256, "test_size": len(dataset.x_test)}
    return evaluate_probs(probs, dataset.y_test.astype(int), data=info), dataset


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
    from mlplab.plots import _figure, to_png

    fig, (ax,) = _figure(4.6, 4.2)
    centres = [(b["low"] + b["high"]) / 2 for b in reliability]
    ax.bar(centres, [b["accuracy"] for b in reliability], width=0.09, color="#4a7bd0",
           label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    return to_png(fig)


def write_evaluation(evaluation: Evaluation, images: np.ndarray, out: Path,
                     *, title: str) -> dict[str, bytes]:
    """evaluation.json, the three PNGs and a self-contained evaluation.html in ``out``."""
    from mlplab.reports import html_page, html_table, img
    from mlplab.runs import write_bytes, write_text

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
    ])
    write_text(out / "evaluation.html", page)
    return pngs


def sample_grid_png(images: np.ndarray, labels: np.ndarray, *, title: str) -> bytes:
    """A grid of digits with their labels (``mlplab show``)."""
    from matplotlib.figure import Figure

    from mlplab.plots import to_png

    n = len(images)
    cols = min(8, max(n, 1))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(cols * 1.1, rows * 1.25 + 0.4), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, label in zip(axes, images, labels, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(str(int(label)), fontsize=9)
    fig.suptitle(title)
    return to_png(fig)
