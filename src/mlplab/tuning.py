"""Hyperparameter search with Optuna over ``TrainConfig``, from one laptop to many machines.

Every trial is an ordinary run directory (``runs/tune-NAME/trial-0007``). The study lives
in an SQLite file beside them by default, or in PostgreSQL (``--storage postgresql://…``)
so that any number of ``mlplab tune`` workers on any number of machines share it.
Heartbeats let a surviving worker mark a killed worker's trial failed, and a retry
callback puts its parameters back in the queue.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
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
    epochs: int = 50  # the per-trial budget (pruning stops most trials long before it)
    limit: int | None = None
    max_layers: int = 3
    # Trials are compared on a fixed half of the test set and `evaluate` of the best trial
    # tests on the other half, so its accuracy is an honest estimate, not the search's
    # maximum. Half of t10k is 5,000 digits: a trial's value then carries about ±0.3 points
    # of sampling noise, against ±1 point on a held-out tenth of the embedded sample's 5,000
    # training digits, and the best of 30 noisy values flatters a search much less.
    validation: str = "test-half"

    def describe(self) -> dict:
        return {"version": 2, "data": self.data, "epochs": self.epochs, "limit": self.limit,
                "validation": self.validation,
                "max_layers": self.max_layers, "units": list(UNITS),
                "batch_sizes": list(BATCH_SIZES), "activations": list(ACTIVATIONS),
                "optimizers": list(OPTIMIZERS), "lr": [1e-4, 0.3], "dropout": [0.0, 0.5],
                "weight_decay": [1e-6, 1e-2]}


def suggest_config(trial: Any, space: SearchSpace, *, seed: int) -> TrainConfig:
    """Sample one TrainConfig: layers, units, activation, dropout, optimizer, lr, batch, wd.

    Every trial trains with the same ``seed``, so all see the same validation split and a
    retried trial repeats the killed one exactly.
    """
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
        validation=space.validation,
    )


def study_dir(runs_dir: str | Path, study: str) -> Path:
    return Path(runs_dir) / f"tune-{study}"


def storage_url(runs_dir: str | Path, study: str, storage: str | None) -> str:
    if storage:
        return storage
    directory = study_dir(runs_dir, study)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory.resolve() / 'study.db'}"


def database_url(url: str) -> str:
    """``postgresql://`` with the installed driver: psycopg 3 unless psycopg2 is present.

    SQLAlchemy before 2.1 means psycopg2 by a bare ``postgresql://``; ``mlplab[postgres]``
    installs psycopg 3, so name it explicitly when psycopg2 is missing.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg{sep}{rest}"
    return url


def hide_password(url: str) -> str:
    """The URL for messages: ``postgresql://user:***@host/db``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def short_error(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def is_database_error(e: BaseException) -> bool:
    """An error of the database or its connection (SQLAlchemy's, the driver's or Optuna's)."""
    import optuna

    if isinstance(e, optuna.exceptions.StorageInternalError):
        return True
    return any(c.__module__.split(".")[0] in ("sqlalchemy", "psycopg", "psycopg2", "sqlite3")
               for c in type(e).__mro__)


def open_storage(url: str, *, heartbeat: int = 10, connect_timeout: int = 10) -> Any:
    """An RDB storage with heartbeats and retries; plain one-line errors for bad URLs."""
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL; use e.g. "
                          "postgresql://user:password@host/db or sqlite:///path/study.db")
    url = database_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres")):
        # An unreachable host fails in seconds instead of the TCP timeout (minutes).
        engine_kwargs["connect_args"] = {"connect_timeout": connect_timeout}
    try:
        for attempt in range(8):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ExperimentalWarning for heartbeats
                    return RDBStorage(url, heartbeat_interval=heartbeat,
                                      grace_period=3 * heartbeat,
                                      failed_trial_callback=RetryFailedTrialCallback(
                                          max_retry=3),
                                      engine_kwargs=engine_kwargs)
            except Exception as e:
                # Two workers starting together both create the schema; one loses the race
                # (PostgreSQL: a duplicate key in its catalog, an IntegrityError, or, when
                # the other's CREATE TYPE committed first, 'type "studydirection" already
                # exists', a ProgrammingError). The next attempt finds the schema made.
                lost = "IntegrityError" in type(e).__name__ or "already exists" in str(e)
                if not lost or attempt == 7:
                    raise
                time.sleep(0.3 * (attempt + 1))
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"--storage: the database driver is missing ({e}); for PostgreSQL: "
                          "pip install 'mlplab[postgres]'") from None
    except Exception as e:  # SQLAlchemy: ArgumentError, OperationalError, …
        kind = type(e).__name__
        if "Operational" in kind or "StorageInternal" in kind:
            raise ConfigError(f"--storage: cannot reach the database ({short_error(e)})") \
                from None
        raise ConfigError(f"--storage {hide_password(url)!r} is not usable "
                          f"({kind}: {short_error(e)})") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def opened_storage(url: str, *, heartbeat: int = 10) -> Iterator[Any]:
    """:func:`open_storage`, its connections closed afterwards."""
    storage = open_storage(url, heartbeat=heartbeat)
    try:
        yield storage
    finally:
        storage.engine.dispose()


# The first trial of a new study: a sound MNIST MLP (one 256-unit relu layer, Adam 1e-3).
BASELINE = {"n_layers": 1, "units_0": 256, "optimizer": "adam", "activation": "relu",
            "dropout": 0.2, "lr": 1e-3, "batch_size": 64, "weight_decay": 1e-4}

PRUNERS = ("halving", "hyperband", "median", "none")


def make_pruners(epochs: int) -> dict[str, Any]:
    """The pruners ``--pruner`` offers, on per-epoch validation accuracy.

    - ``halving`` (the default): asynchronous successive halving, Ray Tune's default
      scheduler: at 3, 9, 27 … epochs a trial goes on only if it is in the top third of the
      trials that reached that epoch. It is what saves time when a trial's cost is its epochs.
      (A first rung at 2 epochs was measured too: it pruned slow starters, such as RMSprop
      at a high rate, that end up best, and found a best trial 0.7 points worse.)
    - ``hyperband``: several successive-halving brackets, from aggressive to patient (Optuna's
      recommendation for TPE when it is unclear how early a good trial shows).
    - ``median``: stop a trial below the median of earlier trials at the same epoch: gentle,
      it rarely loses the best trial, and saves little when most trials are good.
    """
    import optuna

    return {"halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=3,
                                                              reduction_factor=3),
            "hyperband": optuna.pruners.HyperbandPruner(min_resource=2, max_resource=epochs),
            "median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
            "none": optuna.pruners.NopPruner()}


def load_or_create_study(name: str, storage: Any, space: SearchSpace, *, seed: int,
                         pruner: str) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning for constant_liar
        # constant_liar keeps parallel workers from sampling the same point while their
        # trials run, as Optuna advises for distributed studies. (Multivariate TPE was
        # measured too: with pruning it found a worse best trial, 0.942 against 0.950.)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, constant_liar=True)
    pruners = make_pruners(space.epochs)
    if pruner not in pruners:
        raise ConfigError(f"--pruner: unknown pruner {pruner!r}; choose "
                          f"{', '.join(PRUNERS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=pruners[pruner], direction="maximize",
                                load_if_exists=True)
    wanted = space.describe()
    found = study.user_attrs.get("search_space")
    if found is None:
        study.set_user_attr("search_space", wanted)
        # A known good starting point, as Optuna's docs advise: TPE ranks every complete trial
        # above every pruned one, so a weak random first trial (which pruners let finish)
        # would otherwise steer the sampler while most later trials are pruned.
        study.enqueue_trial(BASELINE, skip_if_exists=True)
    elif found != wanted:
        raise ConfigError(f"study {name!r} already exists with a different search space "
                          f"(data {found.get('data')}, {found.get('epochs')} epochs, limit "
                          f"{found.get('limit')}); choose another --study name")
    return study


def finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def sweep_stale_trials(study: Any) -> None:
    """Mark trials whose worker stopped beating failed (and queue their retries)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        optuna.storages.fail_stale_trials(study)


@dataclass(frozen=True)
class TuneResult:
    """The study's trials (Optuna ``FrozenTrial`` records) when this worker stopped."""

    study_name: str
    trials: list[Any]

    @property
    def best(self) -> Any | None:
        """The complete trial with the highest value (the earliest of equals), or None."""
        from optuna.trial import TrialState

        complete = [t for t in self.trials if t.state == TrialState.COMPLETE]
        return max(complete, key=lambda t: t.value, default=None)


def tune(*, study_name: str, trials: int, runs_dir: str | Path = "runs",
         storage: str | None = None, timeout: float | None = None,
         space: SearchSpace = SearchSpace(), seed: int = 42, pruner: str = "halving",
         heartbeat: int = 10, on_trial: Callable[[dict], None] | None = None) -> TuneResult:
    """Work on the study until it has ``trials`` finished trials (shared by all workers).

    A trial's value is the validation accuracy after its last epoch, the accuracy of the
    model its run directory keeps. Pruned trials count as finished; their runs say
    ``interrupted``.
    """
    from mlplab.data import load_dataset

    TrainConfig(data=space.data, epochs=space.epochs, limit=space.limit,
                validation=space.validation)  # bad options fail before any study exists
    dataset = load_dataset(space.data)  # data errors before any study exists
    url = storage_url(runs_dir, study_name, storage)
    with opened_storage(url, heartbeat=heartbeat) as rdb:
        study = load_or_create_study(study_name, rdb, space, seed=seed, pruner=pruner)
        run_study(study, space=space, runs_dir=runs_dir, trials=trials, timeout=timeout,
                  seed=seed, dataset=dataset, on_trial=on_trial)
        return TuneResult(study_name, study.get_trials())


def run_study(study: Any, *, space: SearchSpace, runs_dir: str | Path, trials: int,
              timeout: float | None, seed: int, dataset: Any,
              on_trial: Callable[[dict], None] | None) -> None:
    """This worker's share of the study: trials until ``trials`` have finished."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from mlplab.backend import start_backend
    from mlplab.runs import create_run, open_run, train_run

    start_backend()  # trials of every size share this process: one XLA thread per core
    root = study_dir(runs_dir, study.study_name)
    host = socket.gethostname()

    def objective(trial: Any) -> float:
        config = suggest_config(trial, space, seed=seed)
        name = f"trial-{trial.number:04d}"
        if (root / name / "config.json").exists():  # left by a deleted study of this name
            name += f"-{len(list(root.glob(name + '-*'))) + 1}"
        trial.set_user_attr("run", str((root / name).resolve()))  # before the folder exists
        trial.set_user_attr("host", host)
        run = create_run(root, name, config)

        def report(row: dict) -> None:
            trial.report(row["val_accuracy"], row["epoch"])
            # After the last epoch there is nothing left to save: the trial completes.
            if row["epoch"] < config.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"at epoch {row['epoch']}")

        try:
            result = train_run(run, config, dataset, name=name, on_epoch=report)
        except optuna.TrialPruned:
            open_run(run.path).set_status("interrupted")
            raise
        if result.status != "complete":  # Ctrl-C: training stopped early and said so
            raise KeyboardInterrupt
        return result.history[-1]["val_accuracy"]

    def tell(study: Any, trial: Any) -> None:
        if on_trial:
            on_trial({"number": trial.number, "state": trial.state.name,
                      "value": trial.value, "params": trial.params,
                      "epochs": len(trial.intermediate_values),
                      "run": trial.user_attrs.get("run")})

    try:
        if finished(study) < trials:
            stop = MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning of the retry callback
                study.optimize(objective, timeout=timeout, callbacks=[stop, tell],
                               catch=(RunError,))
        sweep_stale_trials(study)  # a worker that died near the end leaves no RUNNING trial
    except Exception as e:
        if is_database_error(e):
            raise ConfigError(f"--storage: lost the database ({short_error(e)})") from None
        raise


@contextlib.contextmanager
def open_study(study_name: str, *, runs_dir: str | Path = "runs",
               storage: str | None = None) -> Iterator[Any]:
    """An existing study (default: the SQLite file under ``runs_dir``), closed afterwards."""
    import optuna

    url = storage or f"sqlite:///{(study_dir(runs_dir, study_name) / 'study.db').resolve()}"
    if storage is None and not (study_dir(runs_dir, study_name) / "study.db").exists():
        raise ConfigError(f"no study {study_name!r} under {runs_dir}/ (run `mlplab tune "
                          f"--study {study_name}` first, or give --storage)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with opened_storage(url) as rdb:
        try:
            study = optuna.load_study(study_name=study_name, storage=rdb)
        except KeyError:
            raise ConfigError(f"the storage has no study named {study_name!r}") from None
        yield study


def export_best(study_name: str, *, runs_dir: str | Path = "runs", storage: str | None = None,
                out: Path | None = None) -> Path:
    """Copy the best complete trial's run directory to ``out`` (default runs/NAME-best)."""
    with open_study(study_name, runs_dir=runs_dir, storage=storage) as study:
        best = TuneResult(study_name, study.get_trials()).best
    if best is None:
        raise RunError(f"study {study_name!r} has no complete trial yet")
    from mlplab.runs import write_json

    out = out or Path(runs_dir) / f"{study_name}-best"
    recorded = Path(best.user_attrs["run"])
    # The recorded path, or the same trial under this --runs-dir (a moved or copied folder).
    candidates = [recorded, study_dir(runs_dir, study_name) / recorded.name]
    source = next((p for p in candidates if (p / "model.keras").is_file()), None)
    if source is None:
        host = best.user_attrs.get("host", "another machine")
        raise RunError(f"the best trial {best.number} ran on {host} and its run {recorded} is "
                       f"not here; copy that folder to {candidates[1]} and try again")
    if out.exists():
        raise RunError(f"{out} already exists; choose another --out")
    shutil.copytree(source, out)
    write_json(out / "tune.json", {"study": study_name, "trial": best.number,
                                   "value": best.value, "params": best.params,
                                   "source": str(source)})
    return out


def write_report(study_name: str, *, runs_dir: str | Path = "runs", storage: str | None = None,
                 out: Path | None = None) -> Path:
    """tune.html (default in runs/tune-NAME): optimization history, parameter importances,
    parallel coordinates and every trial's per-epoch validation accuracy, then all trials."""
    with open_study(study_name, runs_dir=runs_dir, storage=storage) as study:
        return report_html(study, out or study_dir(runs_dir, study_name))


def report_html(study: Any, out: Path) -> Path:
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
                                              "parallel coordinates")),
                ("Validation accuracy per epoch (pruned trials stop early)",
                 img(render(vis.plot_intermediate_values), "intermediate values"))]
    rows = [[t.number, t.state.name, f"{t.value:.4f}" if t.value is not None else "–",
             len(t.intermediate_values), json.dumps(t.params), t.user_attrs.get("run", "")]
            for t in study.get_trials()]
    sections.append(("Trials", html_table(["trial", "state", "val_accuracy", "epochs",
                                           "params", "run"], rows)))
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "tune.html", html_page(f"Study {study.study_name}", sections))
    return out / "tune.html"
