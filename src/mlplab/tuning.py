"""Hyperparameter search with Optuna over ``TrainConfig``, from one laptop to many machines.

Every trial is an ordinary run directory (``runs/tune-NAME/trial-0007``). The study lives
in an SQLite file beside them by default, or in PostgreSQL (``--storage postgresql://…``)
so that any number of ``mlplab tune`` workers on any number of machines share it.
Heartbeats let a surviving worker mark a killed worker's trial failed, and a retry
callback puts its parameters back in the queue.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import TrainConfig
from mlplab.errors import ConfigError, RunError

UNITS = (32, 64, 128, 256, 512)
BATCH_SIZES = (32, 64, 128, 256)
ACTIVATIONS = ("relu", "tanh", "gelu")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches; stored in the study so that workers cannot disagree."""

    data: str = "mnist-sample"
    epochs: int = 10  # the per-trial budget (pruning may stop a trial earlier)
    limit: int | None = None
    max_layers: int = 3

    def describe(self) -> dict:
        return {"version": 1, "data": self.data, "epochs": self.epochs, "limit": self.limit,
                "max_layers": self.max_layers, "units": list(UNITS),
                "batch_sizes": list(BATCH_SIZES), "activations": list(ACTIVATIONS),
                "optimizers": list(OPTIMIZERS), "lr": [1e-4, 0.3], "dropout": [0.0, 0.5],
                "weight_decay": [1e-6, 1e-2]}


def suggest_config(trial: Any, space: SearchSpace, *, seed: int) -> TrainConfig:
    """Sample one TrainConfig: layers, units, activation, dropout, optimizer, lr, batch, wd."""
    n_layers = trial.suggest_int("n_layers", 1, space.max_layers)
    layers = tuple(trial.suggest_categorical(f"units_{i}", UNITS) for i in range(n_layers))
    optimizer = trial.suggest_categorical("optimizer", OPTIMIZERS)
    return TrainConfig(
        layers=layers,
        activation=trial.suggest_categorical("activation", ACTIVATIONS),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        optimizer=optimizer,
        momentum=0.9 if optimizer == "sgd" else 0.0,
        lr=trial.suggest_float("lr", 1e-4, 0.3, log=True),
        batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
        weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        epochs=space.epochs, data=space.data, limit=space.limit, seed=seed,
    )


def study_dir(runs_dir: str | Path, study: str) -> Path:
    return Path(runs_dir) / f"tune-{study}"


def storage_url(runs_dir: str | Path, study: str, storage: str | None) -> str:
    if storage:
        return storage
    directory = study_dir(runs_dir, study)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory.resolve() / 'study.db'}"


def open_storage(url: str, *, heartbeat: int = 10) -> Any:
    """An RDB storage with heartbeats and retries; plain one-line errors for bad URLs."""
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL; use e.g. "
                          "postgresql://user:password@host/db or sqlite:///path/study.db")
    import time

    try:
        for attempt in range(8):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ExperimentalWarning for heartbeats
                    return RDBStorage(url, heartbeat_interval=heartbeat,
                                      grace_period=3 * heartbeat,
                                      failed_trial_callback=RetryFailedTrialCallback(
                                          max_retry=3),
                                      engine_kwargs={"pool_pre_ping": True})
            except Exception as e:
                # Two workers starting together both create the schema; one loses the race.
                if "IntegrityError" not in type(e).__name__ or attempt == 7:
                    raise
                time.sleep(0.3 * (attempt + 1))
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"--storage: the database driver is missing ({e}); for PostgreSQL: "
                          "pip install 'mlplab[postgres]'") from None
    except Exception as e:  # SQLAlchemy: ArgumentError, OperationalError, …
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        kind = type(e).__name__
        if isinstance(e, optuna.exceptions.StorageInternalError) or "Operational" in kind:
            raise ConfigError(f"--storage: cannot reach the database ({first})") from None
        raise ConfigError(f"--storage {url!r} is not usable ({kind}: {first})") from None


def load_or_create_study(name: str, storage: Any, space: SearchSpace, *, seed: int,
                         pruner: str) -> Any:
    import optuna

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    pruners = {"median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
               "hyperband": optuna.pruners.HyperbandPruner(min_resource=2,
                                                           max_resource=space.epochs),
               "none": optuna.pruners.NopPruner()}
    if pruner not in pruners:
        raise ConfigError(f"--pruner: unknown pruner {pruner!r}; choose median, hyperband "
                          "or none")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=pruners[pruner], direction="maximize",
                                load_if_exists=True)
    wanted = space.describe()
    found = study.user_attrs.get("search_space")
    if found is None:
        study.set_user_attr("search_space", wanted)
    elif found != wanted:
        raise ConfigError(f"study {name!r} already exists with a different search space "
                          f"(data {found.get('data')}, {found.get('epochs')} epochs, limit "
                          f"{found.get('limit')}); choose another --study name")
    return study


def finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def tune(*, study_name: str, trials: int, runs_dir: str | Path = "runs",
         storage: str | None = None, timeout: float | None = None,
         space: SearchSpace = SearchSpace(), seed: int = 42, pruner: str = "median",
         heartbeat: int = 10, on_trial: Callable[[dict], None] | None = None) -> Any:
    """Work on the study until it has ``trials`` finished trials (shared by all workers)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from mlplab.data import load_dataset
    from mlplab.runs import create_run, open_run, train_run

    url = storage_url(runs_dir, study_name, storage)
    study = load_or_create_study(study_name, open_storage(url, heartbeat=heartbeat), space,
                                 seed=seed, pruner=pruner)
    dataset = load_dataset(space.data)
    root = study_dir(runs_dir, study_name)

    def objective(trial: Any) -> float:
        config = suggest_config(trial, space, seed=seed + trial.number)
        name = f"trial-{trial.number:04d}"
        if (root / name / "config.json").exists():  # a retried trial: a fresh directory
            name += f"-retry{len(list(root.glob(name + '-retry*'))) + 1}"
        run = create_run(root, name, config)
        trial.set_user_attr("run", str(run.path))

        def report(row: dict) -> None:
            trial.report(row["val_accuracy"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            result = train_run(run, config, dataset, name=name, on_epoch=report)
        except optuna.TrialPruned:
            open_run(run.path).set_status("interrupted")
            raise
        return max(r["val_accuracy"] for r in result.history)

    def tell(study: Any, trial: Any) -> None:
        if on_trial:
            on_trial({"number": trial.number, "state": trial.state.name,
                      "value": trial.value, "params": trial.params,
                      "run": trial.user_attrs.get("run")})

    if finished(study) < trials:
        stop = MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning of the retry callback
            study.optimize(objective, timeout=timeout, callbacks=[stop, tell],
                           catch=(RunError,))
    return study


def load_study(study_name: str, *, runs_dir: str | Path = "runs",
               storage: str | None = None) -> Any:
    import optuna

    url = storage or f"sqlite:///{(study_dir(runs_dir, study_name) / 'study.db').resolve()}"
    if storage is None and not (study_dir(runs_dir, study_name) / "study.db").exists():
        raise ConfigError(f"no study {study_name!r} under {runs_dir}/ (run `mlplab tune "
                          f"--study {study_name}` first, or give --storage)")
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"the storage has no study named {study_name!r}") from None


def export_best(study: Any, out: Path) -> Path:
    """Copy the best complete trial's run directory to ``out`` (a normal run)."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        raise RunError(f"study {study.study_name!r} has no complete trial yet")
    best = max(complete, key=lambda t: t.value)
    source = Path(best.user_attrs["run"])
    if not (source / "model.keras").exists():
        raise RunError(f"the best trial's run {source} is not on this machine")
    if out.exists():
        raise RunError(f"{out} already exists; choose another --out")
    shutil.copytree(source, out)
    (out / "tune.json").write_text(json.dumps({"study": study.study_name,
                                               "trial": best.number, "value": best.value,
                                               "params": best.params}, indent=2) + "\n")
    return out


def write_report(study: Any, out: Path) -> Path:
    """tune.html: optimization history, parameter importances, parallel coordinates."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    from mlplab.reports import html_page, html_table, img
    from mlplab.runs import write_text

    def render(fn: Callable) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = fn(study)
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(9, 5)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    from optuna.trial import TrialState

    done = study.get_trials(states=(TrialState.COMPLETE,))
    if len(done) < 2:
        raise RunError("a report needs at least two complete trials")
    sections = [("Optimization history", img(render(vis.plot_optimization_history),
                                              "optimization history")),
                ("Parameter importances", img(render(vis.plot_param_importances),
                                               "parameter importances")),
                ("Parallel coordinates", img(render(vis.plot_parallel_coordinate),
                                              "parallel coordinates"))]
    rows = [[t.number, t.state.name, f"{t.value:.4f}" if t.value is not None else "–",
             json.dumps(t.params)] for t in study.get_trials()]
    sections.append(("Trials", html_table(["trial", "state", "best val_accuracy", "params"],
                                          rows)))
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "tune.html", html_page(f"Study {study.study_name}", sections))
    return out / "tune.html"
