"""Training: one loop, two engines, per-epoch checkpoints and exact resume.

Both engines see the same batches: epoch ``e`` visits the training set in the order
``epoch_permutation(seed, e, n)``, and every other random choice (augmentation,
dropout) is derived from the seed, the epoch and state saved in the checkpoint. So a
run that is killed and resumed replays exactly what an uninterrupted run does.

- ``keras``: plain ``model.fit`` for one epoch at a time (the reference).
- ``mlplab``: the Keras model's stateless API inside one jitted function per epoch
  (``lax.scan`` over batches, data resident on the device), see :mod:`mlplab.engine`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlplab.config import TrainConfig
from mlplab.data import Dataset, one_hot, prepare
from mlplab.errors import RunError

if TYPE_CHECKING:
    import keras

    from mlplab.runs import Run


@dataclass
class Split:
    """Training and validation data as stored: (n, 784) uint8 pixels and integer labels.

    Keeping bytes (not float32) makes the resident data 4× smaller; each engine turns
    them into the lab's float32 / 255 and one-hot labels where it uses them.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class TrainResult:
    model: keras.Model
    history: list[dict]
    seconds: float
    status: str = "complete"  # complete | interrupted
    stopped_early: bool = False
    best_epoch: int | None = None
    extra: dict = field(default_factory=dict)


def split_data(dataset: Dataset, config: TrainConfig) -> Split:
    """Validation on the test set (as in the lab), on a fixed half of it, or on a seeded
    held-out fraction of train."""
    x, y = dataset.x_train.reshape(len(dataset.x_train), -1), dataset.y_train
    if config.validation == "test-half":
        val, _ = dataset.test_halves()
        return Split(x, y, dataset.x_test[val].reshape(len(val), -1), dataset.y_test[val])
    if config.val_fraction:
        order = np.random.default_rng(config.seed).permutation(len(x))
        n_val = max(1, int(round(len(x) * config.val_fraction)))
        val, train = order[:n_val], order[n_val:]
        return Split(x[train], y[train], x[val], y[val])
    return Split(x, y, dataset.x_test.reshape(len(dataset.x_test), -1), dataset.y_test)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` samples: a pure function of its inputs."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)  # the last partial batch counts, as in fit


def prepare_model(config: TrainConfig, split: Split, *, name: str = "mlp") -> keras.Model:
    """A freshly initialized, compiled model (same seed → same initial weights)."""
    from mlplab.models import build_model, compile_model, seed_everything

    seed_everything(config.seed)
    model = build_model(config, name=name, input_dim=split.x_train.shape[1])
    compile_model(model, config, steps_per_epoch=steps_per_epoch(len(split.x_train),
                                                                 config.batch_size))
    return model


# ---------------------------------------------------------------- checkpoints


def model_state(model: keras.Model) -> dict[str, np.ndarray]:
    """Every variable that affects what happens next: weights, RNG and optimizer state."""
    import keras

    state = {f"model/{i}": keras.ops.convert_to_numpy(v.value)
             for i, v in enumerate(model.variables)}
    state.update({f"optimizer/{i}": keras.ops.convert_to_numpy(v.value)
                  for i, v in enumerate(model.optimizer.variables)})
    return state


def set_model_state(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        for i, v in enumerate(variables):
            key = f"{prefix}/{i}"
            if key not in state or tuple(state[key].shape) != tuple(v.shape):
                raise RunError(f"the checkpoint does not fit this model ({key}); was the run's "
                               "config.json edited?")
            v.assign(state[key])


def save_checkpoint(run: Run, model: keras.Model, history: list[dict],
                    best: dict[str, np.ndarray] | None) -> None:
    """Atomically write checkpoint.npz: state, history and the best weights so far."""
    import io
    import json

    from mlplab.runs import write_bytes

    arrays = model_state(model)
    if best:
        arrays.update({f"best/{k}": v for k, v in best.items()})
    arrays["history_json"] = np.frombuffer(json.dumps(history).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(run.checkpoint, buf.getvalue())


def load_checkpoint(run: Run) -> tuple[dict[str, np.ndarray], list[dict], dict | None]:
    import json
    import zipfile

    try:
        with np.load(run.checkpoint, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunError(f"{run.checkpoint} is unreadable ({e}); start the run again") from None
    history = json.loads(arrays.pop("history_json").tobytes().decode())
    best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")} or None
    state = {k: v for k, v in arrays.items() if not k.startswith("best/")}
    return state, history, best


# ---------------------------------------------------------------- the loop


def train(config: TrainConfig, dataset: Dataset, *, run: Run | None = None,
          resume: bool = False, name: str = "mlp", verbose: int = 0,
          on_epoch: Callable[[dict], None] | None = None,
          on_model: Callable[[keras.Model], None] | None = None) -> TrainResult:
    """Train ``config`` on ``dataset``; with a ``run``, checkpoint every epoch (and resume).

    Ctrl-C stops after the current epoch's checkpoint is saved; the result's status is
    then ``interrupted`` and ``--resume`` continues exactly where it stopped.
    """
    from mlplab.backend import start_backend

    split = split_data(dataset.limit(config.limit), config)
    start_backend(config, input_dim=split.x_train.shape[1])  # before the first JAX array
    model = prepare_model(config, split, name=name)
    if on_model is not None:  # e.g. print the summary before the long part starts
        on_model(model)
    model.optimizer.build(model.trainable_variables)  # its state exists before epoch 1
    history: list[dict] = []
    best: dict[str, np.ndarray] | None = None
    if resume and run is not None and run.checkpoint.exists():
        state, history, best = load_checkpoint(run)
        set_model_state(model, state)
    engine = make_engine(config, model, split, verbose=verbose)
    status = "complete"
    stopped_early = False
    try:
        for epoch in range(len(history), config.epochs):
            if early_stop(history, config):
                stopped_early = True
                break
            row = engine.run_epoch(epoch)
            history.append(row)
            if is_best(history):
                best = model_state(model) if config.restore_best else best
            if run is not None:
                save_checkpoint(run, model, history, best)
                run.write_history(history)
            if on_epoch:
                on_epoch(row)
    except KeyboardInterrupt:
        status = "interrupted"
        if run is not None and history:  # the state at the last finished epoch is on disk
            state, _, _ = load_checkpoint(run)
            set_model_state(model, state)
    best_epoch = None
    if history:
        best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"]
    if config.restore_best and best and status == "complete":
        set_model_state(model, best)
    seconds = sum(r["seconds"] for r in history)
    return TrainResult(model, history, seconds, status, stopped_early, best_epoch)


def is_best(history: list[dict]) -> bool:
    return history[-1]["val_loss"] <= min(r["val_loss"] for r in history)


def early_stop(history: list[dict], config: TrainConfig) -> bool:
    """True when val_loss has not improved for ``patience`` epochs (patience 0: never)."""
    if not config.patience or len(history) <= config.patience:
        return False
    best_before = min(r["val_loss"] for r in history[:-config.patience])
    return min(r["val_loss"] for r in history[-config.patience:]) >= best_before


# ---------------------------------------------------------------- engines


class KerasEngine:
    """``model.fit`` one epoch at a time on our permutation (shuffle=False)."""

    def __init__(self, config: TrainConfig, model: keras.Model, split: Split, *, verbose: int):
        self.config, self.model, self.verbose = config, model, verbose
        self.x, self.y = prepare(split.x_train), one_hot(split.y_train)
        self.val = (prepare(split.x_val), one_hot(split.y_val))

    def run_epoch(self, epoch: int) -> dict:
        from mlplab.models import learning_rate_at

        c = self.config
        lr = learning_rate_at(self.model.optimizer)
        order = epoch_permutation(c.seed, epoch, len(self.x))
        x = self.x[order]
        if c.augments:
            x = augment_numpy(x, c, epoch)
        start = time.perf_counter()
        h = self.model.fit(x, self.y[order], batch_size=c.batch_size, epochs=epoch + 1,
                           initial_epoch=epoch, shuffle=False, verbose=self.verbose,
                           validation_data=self.val).history
        seconds = time.perf_counter() - start
        return {"epoch": epoch + 1, "loss": float(h["loss"][-1]),
                "accuracy": float(h["accuracy"][-1]), "val_loss": float(h["val_loss"][-1]),
                "val_accuracy": float(h["val_accuracy"][-1]), "lr": lr, "seconds": seconds}


def augment_numpy(x: np.ndarray, config: TrainConfig, epoch: int) -> np.ndarray:
    """Augment a whole epoch of (n, 784) images with the same JAX code the engine uses."""
    import jax

    from mlplab.augment import augment_images

    key = jax.random.fold_in(jax.random.key(config.seed), epoch)
    out = augment_images(key, x.reshape(-1, 28, 28), config)
    return np.asarray(out, dtype=np.float32).reshape(len(x), -1)


def make_engine(config: TrainConfig, model: keras.Model, split: Split, *, verbose: int):
    import keras

    # The fused engine is JAX code; on another Keras backend, fit is the engine.
    if config.engine == "keras" or keras.backend.backend() != "jax":
        return KerasEngine(config, model, split, verbose=verbose)
    from mlplab.engine import FusedEngine

    return FusedEngine(config, model, split)
