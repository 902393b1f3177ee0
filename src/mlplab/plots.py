"""Pictures: functions from data to PNG bytes (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, list(axes) if ncols > 1 else [axes]


def integer_epochs(ax) -> None:
    """Epochs are whole numbers: no 1.5 ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sample_png(image: np.ndarray, label: int, *, title: str = "") -> bytes:
    """One digit, as the lab shows it with ``plt.imshow(x_train[i], cmap='gray')``."""
    fig, (ax,) = _figure(3.2, 3.4)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(title or f"label: {label}")
    ax.set_xticks([])
    ax.set_yticks([])
    return to_png(fig)


def curves_png(history: Sequence[dict], *, title: str = "") -> bytes:
    """The lab's ``visualize_training_results``: loss vs val_loss and accuracy vs val_accuracy."""
    epochs = [r["epoch"] for r in history]
    few = len(epochs) <= 20  # markers and one tick per epoch only while they stay readable
    fig, (left, right) = _figure(9, 3.6, ncols=2)
    for ax, key, label in ((left, "loss", "loss"), (right, "accuracy", "accuracy")):
        ax.plot(epochs, [r[key] for r in history], "o-" if few else "-", label=f"train {label}")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], "s--" if few else "--",
                label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        integer_epochs(ax)
    if title:
        fig.suptitle(title)
    return to_png(fig)


def comparison_png(histories: dict[str, Sequence[dict]], *, title: str = "") -> bytes:
    """Validation accuracy and loss of several runs overlaid (the lab's comparison)."""
    fig, (left, right) = _figure(9, 3.6, ncols=2)
    for name, history in histories.items():
        epochs = [r["epoch"] for r in history]
        left.plot(epochs, [r["val_accuracy"] for r in history], "o-", label=name)
        right.plot(epochs, [r["val_loss"] for r in history], "o-", label=name)
    return finish_validation_panels(fig, left, right, title=title)


def finish_validation_panels(fig: Figure, left, right, *, title: str, suffix: str = "") -> bytes:
    """Labels, grid and legend for the val-accuracy | val-loss pair of panels."""
    for ax, label in ((left, "validation accuracy"), (right, "validation loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label + suffix)
        integer_epochs(ax)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return to_png(fig)


def band_png(groups: dict[str, dict[str, np.ndarray]], *, title: str = "") -> bytes:
    """Mean ± std bands per group over seeds: ``groups[name] = {"epoch", "val_accuracy"...}``."""
    import numpy as np

    fig, (left, right) = _figure(9, 3.6, ncols=2)
    for name, g in groups.items():
        for ax, key in ((left, "val_accuracy"), (right, "val_loss")):
            values = np.asarray(g[key])  # (seeds, epochs)
            mean, std = values.mean(0), values.std(0)
            line, = ax.plot(g["epoch"], mean, "o-", label=f"{name} (n={len(values)})")
            ax.fill_between(g["epoch"], mean - std, mean + std, alpha=0.2,
                            color=line.get_color())
    return finish_validation_panels(fig, left, right, title=title, suffix=" (mean ± std)")


def samples_grid_png(images: np.ndarray, labels: np.ndarray, *, title: str = "") -> bytes:
    """A grid of digits, each titled with its label (``mlplab show``)."""
    import numpy as np
    from matplotlib.figure import Figure

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
    if title:
        fig.suptitle(title)
    return to_png(fig)
