"""Run directories: atomic files, history, status, checkpoints and listing.

A run directory holds ``config.json``, ``environment.json``, ``history.csv``,
``model.keras``, ``curves.png``, ``metrics.json``, ``status`` and ``checkpoint.npz``.
Every file is written to a temporary name and renamed into place, so a crash leaves
the previous version of a file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig, load_config
from mlplab.errors import RunError

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
# The seed lab's history.csv has no lr column (its rate is the constant 0.01).
LAB_HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
STATUSES = ("running", "complete", "interrupted", "failed")


# ---------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # the data must be on disk before the rename is
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def history_csv(rows: list[dict], columns: tuple[str, ...] = HISTORY_COLUMNS) -> str:
    """History rows as CSV text with a fixed column order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: fmt(row[k]) for k in columns})
    return out.getvalue()


def fmt(v: Any) -> str:
    """Full float precision (repr), so identical runs give identical files."""
    return repr(float(v)) if isinstance(v, float) else str(v)


def read_history(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


# ---------------------------------------------------------------- runs


@dataclass
class Run:
    """A run directory and what is known about it."""

    path: Path
    history_columns: tuple[str, ...] = HISTORY_COLUMNS

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        p = self.path / "status"
        return p.read_text().strip() if p.exists() else "unknown"

    def set_status(self, status: str) -> None:
        assert status in STATUSES, status
        write_text(self.path / "status", status + "\n")

    @property
    def config(self) -> TrainConfig:
        return load_config(self.path / "config.json")

    def history(self) -> list[dict]:
        p = self.path / "history.csv"
        return read_history(p) if p.exists() else []

    def metrics(self) -> dict:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def environment(self) -> dict:
        p = self.path / "environment.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def write_history(self, rows: list[dict]) -> None:
        write_text(self.path / "history.csv", history_csv(rows, self.history_columns))

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.npz"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def default_run_name(config: TrainConfig) -> str:
    """``20261125-101500-64-tanh-sgd``: a timestamp and the model, sortable by time."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    layers = "-".join(map(str, config.layers))
    return f"{stamp}-{layers}-{config.activation}-{config.optimizer}"


def create_run(root: str | Path, name: str, config: TrainConfig, *,
               history_columns: tuple[str, ...] = HISTORY_COLUMNS) -> Run:
    """Make ``root/name`` and write its config; refuse to overwrite a different run."""
    if not re.fullmatch(r"[\w.+=@-]+", name) or name in (".", ".."):
        raise RunError(f"run name {name!r} may only hold letters, digits and . _ - + = @")
    path = Path(root) / name
    if (path / "config.json").exists() or (path / "status").exists():
        raise RunError(f"{path} already holds a run; choose another --name, or continue it "
                       f"with --resume {path}")
    path.mkdir(parents=True, exist_ok=True)
    run = Run(path, history_columns)
    write_text(path / "config.json", config.to_json())
    run.set_status("running")
    return run


def open_run(path: str | Path) -> Run:
    """An existing run directory, or a RunError saying why it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a directory; expected a run directory such as "
                       "runs/<name>")
    if not (path / "config.json").is_file():
        hint = ""
        if any((path / d / "config.json").is_file() for d in ("model_1",)):
            hint = f" (a lab directory: its runs are {path}/model_1 … model_3)"
        raise RunError(f"{path} is not an mlplab run: it has no config.json{hint}")
    columns = HISTORY_COLUMNS
    hist = path / "history.csv"
    if hist.exists():
        with open(hist, newline="") as f:
            header = tuple(next(csv.reader(f), ()))
        if header == LAB_HISTORY_COLUMNS:
            columns = LAB_HISTORY_COLUMNS
    return Run(path, columns)


def find_runs(root: str | Path) -> list[Run]:
    """Every run under ``root`` (lab sub-runs included), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob("*/config.json")]
    found += [p.parent for p in root.glob("*/*/config.json")]
    found.sort(key=lambda p: ((p / "config.json").stat().st_mtime, str(p)))
    return [open_run(p) for p in found]


def summarize(run: Run) -> dict:
    """One row for ``mlplab runs``."""
    hist = run.history()
    metrics = run.metrics()
    try:
        config = run.config
        data, layers, optimizer = config.data, "-".join(map(str, config.layers)), config.optimizer
        epochs = config.epochs
    except Exception:  # a damaged config still gets listed
        data = layers = optimizer = "?"
        epochs = 0
    best = max((r["val_accuracy"] for r in hist), default=None)
    env = run.environment()
    return {
        "name": str(run.path),
        "data": env.get("data", {}).get("name", data),
        "layers": layers,
        "optimizer": optimizer,
        "epochs": f"{len(hist)}/{epochs}",
        "best_val_accuracy": best,
        "seconds": metrics.get("train_seconds", sum(r["seconds"] for r in hist)),
        "status": run.status,
    }


# ---------------------------------------------------------------- training into a run


def describe_environment(dataset_info: dict) -> dict:
    """Versions and machine facts that a result depends on (environment.json)."""
    import platform
    import sys

    import keras
    import numpy as np

    backend = keras.backend.backend()
    try:
        backend_version = __import__(backend if backend != "torch" else "torch").__version__
    except Exception:
        backend_version = "?"
    from mlplab import __version__

    return {
        "mlplab": __version__,
        "python": sys.version.split()[0],
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": backend_version,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "data": {"name": dataset_info["name"], "sha256": dataset_info["sha256"],
                 "train_size": dataset_info["train_size"],
                 "test_size": dataset_info["test_size"]},
    }


def train_run(run: Run, config: TrainConfig, dataset: Any, *, resume: bool = False,
              name: str = "mlp", verbose: int = 0, on_epoch: Any = None,
              on_model: Any = None) -> Any:
    """Train ``config`` into ``run``: checkpoints per epoch, then model, curves and metrics.

    ``dataset`` is a :class:`mlplab.data.Dataset`; returns the training result. The status
    file says running / complete / interrupted / failed at every moment.
    """
    result = fit_run(run, config, dataset, resume=resume, name=name, verbose=verbose,
                     on_epoch=on_epoch, on_model=on_model)
    finish_run(run, result, config, dataset, name=name)
    return result


def fit_run(run: Run, config: TrainConfig, dataset: Any, *, resume: bool = False,
            name: str = "mlp", verbose: int = 0, on_epoch: Any = None,
            on_model: Any = None) -> Any:
    """The training part of :func:`train_run`; the run stays ``running`` until
    :func:`finish_run` has written its model and pictures."""
    from mlplab.training import train

    if not (run.path / "environment.json").exists():
        write_json(run.path / "environment.json", describe_environment(dataset.info()))
    run.set_status("running")
    try:
        return train(config, dataset, run=run, resume=resume, name=name, verbose=verbose,
                     on_epoch=on_epoch, on_model=on_model)
    except BaseException:
        run.set_status("failed")
        raise


def finish_run(run: Run, result: Any, config: TrainConfig, dataset: Any, *,
               name: str = "mlp") -> None:
    """Model, curves, metrics and (when validated on the test set) evaluation panels, then
    the final status. Safe in a worker thread while the next model trains (the lab does so)."""
    from mlplab.models import save_model
    from mlplab.plots import curves_png

    try:
        with atomic_path(run.model_path) as tmp:  # the temporary name keeps the .keras suffix
            save_model(result.model, tmp)
        if result.history:
            write_bytes(run.path / "curves.png", curves_png(result.history, title=name))
        write_json(run.path / "metrics.json", run_metrics(result, config))
        if result.status == "complete" and config.validation == "test":
            evaluate_into(run, result.model, dataset)
    except BaseException:
        run.set_status("failed")
        raise
    run.set_status(result.status)


def evaluate_into(run: Run, model: Any, dataset: Any) -> None:
    """The evaluation panels (evaluation.json/.html, confusion, mistakes) in the run dir."""
    from mlplab.evaluation import write_run_panels

    write_run_panels(run.path, model, dataset)


def run_metrics(result: Any, config: TrainConfig) -> dict:
    hist = result.history
    final = hist[-1] if hist else {}
    best = max(hist, key=lambda r: r["val_accuracy"]) if hist else {}
    return {
        "epochs_done": len(hist),
        "epochs": config.epochs,
        "params": int(result.model.count_params()),
        "final": {k: final.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "best_val_accuracy": best.get("val_accuracy"),
        "best_val_accuracy_epoch": best.get("epoch"),
        "best_val_loss": min((r["val_loss"] for r in hist), default=None),
        "train_seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "restored_best": bool(config.restore_best and result.status == "complete"),
        "status": result.status,
    }


def start_runs(config: TrainConfig, *, runs_dir: str | Path = "runs", name: str | None = None,
               seeds: int = 1, echo: Any = lambda s: None, on_epoch: Any = None,
               load: Any = None) -> list[tuple[Run, Any]]:
    """Create and train one run, or one per seed (``NAME-s<seed>``) for seed studies."""
    from dataclasses import replace

    from mlplab.data import load_dataset

    dataset = (load or load_dataset)(config.data)  # data errors before any directory exists
    name = name or default_run_name(config)
    out = []
    for k in range(seeds):
        cfg = replace(config, seed=config.seed + k) if seeds > 1 else config
        run_name = f"{name}-s{cfg.seed}" if seeds > 1 else name
        run = create_run(runs_dir, run_name, cfg)
        echo(f"Run {run.path}: {cfg.describe()}, {cfg.optimizer} lr {cfg.lr}, {cfg.epochs} "
             f"epochs, batch {cfg.batch_size}, seed {cfg.seed}, engine {cfg.engine}")
        result = train_run(run, cfg, dataset, name=run_name,
                           on_epoch=(lambda row, c=cfg: on_epoch(row, c.epochs)) if on_epoch
                           else None)
        out.append((run, result))
        if result.status != "complete":
            break
    return out


def resume_run(path: str | Path, *, echo: Any = lambda s: None,
               on_epoch: Any = None) -> tuple[Run, Any]:
    """Continue a run from its last checkpoint with its own config and data."""
    from mlplab.data import load_dataset

    run = open_run(path)
    config = run.config
    if run.status == "complete":
        raise RunError(f"{run.path} is already complete ({len(run.history())} epochs); start a "
                       "new run to train more")
    dataset = load_dataset(config.data)
    recorded = run.environment().get("data", {}).get("sha256")
    if recorded and recorded != dataset.sha256:
        raise RunError(f"the data behind {config.data!r} changed since {run.path} started "
                       "(sha256 differs); resuming would not reproduce the run")
    done = len(load_checkpoint_history(run))
    echo(f"Resuming {run.path} after epoch {done} of {config.epochs}")
    result = train_run(run, config, dataset, resume=True, name=run.name,
                       on_epoch=(lambda row: on_epoch(row, config.epochs)) if on_epoch else None)
    return run, result


def load_checkpoint_history(run: Run) -> list[dict]:
    if not run.checkpoint.exists():
        return []
    from mlplab.training import load_checkpoint

    return load_checkpoint(run)[1]
