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


def confusion_png(confusion: list[list[int]]) -> bytes:
    """Heat maps of the confusion matrix: counts and row-normalized."""
    from mlplab.plots import _figure, to_png

    m = np.asarray(confusion)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, axes = _figure(11, 4.8, ncols=2)
    for ax, values, title, fmt in ((axes[0], m, "counts", "d"),
                                   (axes[1], norm, "row-normalized (recall)", ".2f")):
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                v = values[i, j]
                if v:
                    ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=6.5,
                            color="white" if norm[i, j] > 0.5 else "#223")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    return to_png(fig)


def mistakes_png(mistakes: list[dict], images: np.ndarray) -> bytes:
    """The most confident mistakes: image, true label, predicted label and probability."""
    from matplotlib.figure import Figure

    from mlplab.plots import to_png

    n = max(len(mistakes), 1)
    cols = min(8, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(cols * 1.25, rows * 1.5), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, m in zip(axes, mistakes, strict=False):
        ax.imshow(images[m["index"]], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {m['true']} → {m['predicted']}\n{m['probability']:.0%}",
                     fontsize=8)
    if not mistakes:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center")
    fig.suptitle("most confident mistakes")
    return to_png(fig)


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
