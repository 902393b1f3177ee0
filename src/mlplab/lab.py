"""The seed lab, "MNIST with a multilayer perceptron", step by step on the run machinery.

Each of the three models is an ordinary run directory (``DIR/model_1`` …), so
``mlplab runs``, ``compare``, ``evaluate`` and ``predict`` work on them too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlplab.config import TrainConfig
from mlplab.data import Dataset, one_hot, prepare


@dataclass(frozen=True)
class LabOptions:
    """The lab's knobs (its models are fixed: see ``models.LAB_MODELS``)."""

    data: str = "auto"
    epochs: int = 5
    batch_size: int = 64
    seed: int = 42
    limit: int | None = None
    engine: str = "mlplab"
    models: tuple[str, ...] = ("model_1", "model_2", "model_3")


@dataclass
class LabResult:
    out: Path
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "complete"  # or "interrupted" (Ctrl-C)


def default_out() -> Path:
    return Path("runs") / time.strftime("lab-%Y%m%d-%H%M%S")


def lab_config(model: str, options: LabOptions) -> TrainConfig:
    from mlplab.models import LAB_MODELS

    return LAB_MODELS[model].with_overrides(
        data=options.data, epochs=options.epochs, batch_size=options.batch_size,
        seed=options.seed, limit=options.limit, engine=options.engine)


def run_lab(dataset: Dataset, out: Path, options: LabOptions, *,
            echo: Callable[[str], None] = lambda s: None, verbose: int = 0,
            on_epoch: Callable[[str, dict], None] | None = None) -> LabResult:
    """Run the whole lab into ``out``; ``echo`` receives the narrative lines."""
    from mlplab import plots, reports, runs
    from mlplab.models import summary_text

    start = time.perf_counter()
    dataset = dataset.limit(options.limit)
    out.mkdir(parents=True, exist_ok=True)
    result = LabResult(out)
    images: dict[str, bytes] = {}

    echo(f"Data: {dataset.name}: {len(dataset.x_train):,} training and "
         f"{len(dataset.x_test):,} test digits")
    label = int(dataset.y_train[0])
    images["sample.png"] = plots.sample_png(dataset.x_train[0], label,
                                            title=f"x_train[0] — label {label}")
    runs.write_bytes(out / "sample.png", images["sample.png"])
    echo(f"Wrote {out / 'sample.png'} (a training digit, label {label})")
    x_flat = prepare(dataset.x_train[:1])  # what the engines do to every batch
    n = len(dataset.x_train)
    echo(f"x_train shape {dataset.x_train.shape} {dataset.x_train.dtype} → reshape to "
         f"{(n, x_flat.shape[1])} {x_flat.dtype}, divided by 255 (range "
         f"{dataset.x_train.min() / 255:.0f}–{dataset.x_train.max() / 255:.0f}); x_test "
         f"{dataset.x_test.shape} → {(len(dataset.x_test), x_flat.shape[1])}")
    echo(f"y_train[0] = {label} → to_categorical → {one_hot(dataset.y_train[:1])[0].tolist()}")

    summaries: dict[str, str] = {}
    histories: dict[str, list[dict]] = {}
    environment: dict = {}
    finished: list[tuple[str, runs.Run, Future]] = []
    # Each model's pictures, evaluation panels and saved model are written in a side thread
    # while the next model trains: training keeps one core busy inside XLA (the GIL is free
    # meanwhile) and the machine has another.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-finish") as side:
        for model_name in options.models:
            config = lab_config(model_name, options)
            run = runs.create_run(out, model_name, config,
                                  history_columns=runs.LAB_HISTORY_COLUMNS)

            def show_model(model, name=model_name, config=config):
                summaries[name] = summary_text(model)
                echo(f"\n{name}: {config.describe()}, SGD lr {config.lr}\n{summaries[name]}")

            trained = runs.fit_run(  # on an error, leaving `with` still finishes the others
                run, config, dataset, name=model_name, verbose=verbose, on_model=show_model,
                on_epoch=(lambda row, n=model_name: on_epoch(n, row)) if on_epoch else None)
            finished.append((model_name, run, side.submit(
                runs.finish_run, run, trained, config, dataset, name=model_name)))
            histories[model_name] = trained.history
            final = trained.history[-1]
            result.rows.append({
                "model": model_name, "layers": config.describe(),
                "params": int(trained.model.count_params()), "loss": final["loss"],
                "accuracy": final["accuracy"], "val_loss": final["val_loss"],
                "val_accuracy": final["val_accuracy"], "seconds": trained.seconds,
            })
            environment = run.environment()
            if trained.status != "complete":
                result.status = trained.status
                break
        comparison = side.submit(plots.comparison_png, histories,
                                 title="the lab's three models")  # matplotlib: one thread
    images["comparison.png"] = comparison.result()
    runs.write_bytes(out / "comparison.png", images["comparison.png"])
    for model_name, run, future in finished:
        future.result()  # a failure in the side thread surfaces here
        for picture in ("curves.png", "confusion.png", "mistakes.png"):
            if (run.path / picture).exists():
                images[f"{model_name}/{picture}"] = (run.path / picture).read_bytes()

    md, page = reports.lab_report(out=out, data=dataset.info(), rows=result.rows,
                                  environment=environment, seed=options.seed,
                                  epochs=options.epochs, batch_size=options.batch_size,
                                  images=images, summaries=summaries)
    runs.write_text(out / "report.md", md)
    runs.write_text(out / "report.html", page)
    result.seconds = time.perf_counter() - start
    return result
