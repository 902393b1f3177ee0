"""Keras models, optimizers and learning-rate schedules built from a ``TrainConfig``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import numpy as np

from mlplab.config import TrainConfig

if TYPE_CHECKING:
    pass

INPUT_DIM = 784
NUM_CLASSES = 10

# The seed lab's three models, as configs (everything else: SGD 0.01, batch 64, 5 epochs).
LAB_MODELS: dict[str, TrainConfig] = {
    "model_1": TrainConfig(layers=(64,), activation="tanh"),
    "model_2": TrainConfig(layers=(64, 32), activation="tanh"),
    "model_3": TrainConfig(layers=(64, 32), activation="relu"),
}


class NumpyGlorotUniform:
    """Keras's default Dense kernel initializer (Glorot uniform), drawn by NumPy.

    On JAX, Keras draws every new weight shape with a freshly compiled XLA program (0.1-0.3 s
    a shape), which made building a model cost more than training it for a few epochs. The
    distribution is the same; the values come from ``numpy.random.default_rng([seed, i])``.
    After the build the layers name Keras's own initializers, so saved models load anywhere.
    """

    def __init__(self, seed: int, index: int):
        self.rng = np.random.default_rng([seed, index])

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[0] + shape[-1]))
        return self.rng.uniform(-limit, limit, size=shape).astype("float32")


def numpy_zeros(shape, dtype=None) -> np.ndarray:
    """Keras's default bias initializer, without a compiled program per shape."""
    return np.zeros(shape, dtype="float32")


def dense(units: int, *, seed: int, index: int, **kwargs) -> keras.layers.Dense:
    return keras.layers.Dense(units, kernel_initializer=NumpyGlorotUniform(seed, index),
                              bias_initializer=numpy_zeros, **kwargs)


def build_model(config: TrainConfig, *, name: str = "mlp", input_dim: int = INPUT_DIM,
                num_classes: int = NUM_CLASSES) -> keras.Model:
    """Dense hidden layers (optionally batch-normalized and dropped out) + a softmax output."""
    seed = config.seed
    layers: list = [keras.Input((input_dim,), name="pixels")]
    for i, units in enumerate(config.layers, start=1):
        if config.batch_norm:
            layers += [dense(units, seed=seed, index=i, use_bias=False, name=f"dense_{i}"),
                       keras.layers.BatchNormalization(name=f"batch_norm_{i}"),
                       keras.layers.Activation(config.activation, name=f"{config.activation}_{i}")]
        else:
            layers.append(dense(units, seed=seed, index=i, activation=config.activation,
                                name=f"dense_{i}"))
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout, seed=seed + i,
                                               name=f"dropout_{i}"))
    layers.append(dense(num_classes, seed=seed, index=0, activation="softmax", name="softmax"))
    model = keras.Sequential(layers, name=name)
    for layer in model.layers:  # the saved config names Keras's standard initializers
        if isinstance(layer, keras.layers.Dense):
            layer.kernel_initializer = keras.initializers.GlorotUniform()
            layer.bias_initializer = keras.initializers.Zeros()
    return model


@keras.saving.register_keras_serializable(package="mlplab")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, cosine or step decay; defined per step, set per epoch."""

    def __init__(self, lr: float, steps_per_epoch: int, epochs: int, schedule: str = "constant",
                 warmup_epochs: float = 0.0, step_epochs: int = 10, step_factor: float = 0.1):
        self.lr = float(lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.schedule = schedule
        self.warmup_epochs = float(warmup_epochs)
        self.step_epochs = int(step_epochs)
        self.step_factor = float(step_factor)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warmup = self.warmup_epochs * self.steps_per_epoch
        total = max(self.epochs * self.steps_per_epoch - warmup, 1.0)
        after = ops.maximum(step - warmup, 0.0)
        if self.schedule == "cosine":
            rate = self.lr * 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(after / total, 1.0)))
        elif self.schedule == "step":
            k = ops.floor(after / (self.step_epochs * self.steps_per_epoch))
            rate = self.lr * ops.power(self.step_factor, k)
        else:
            rate = self.lr * ops.ones_like(step)
        if warmup > 0:
            rate = ops.where(step < warmup, self.lr * (step + 1.0) / warmup, rate)
        return rate

    def get_config(self) -> dict:
        return {"lr": self.lr, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "schedule": self.schedule, "warmup_epochs": self.warmup_epochs,
                "step_epochs": self.step_epochs, "step_factor": self.step_factor}


def build_optimizer(config: TrainConfig, *, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The configured optimizer; a plain float rate when there is no schedule (as the lab)."""
    if config.schedule == "constant" and not config.warmup_epochs:
        lr = config.lr
    else:
        lr = EpochSchedule(config.lr, steps_per_epoch, config.epochs, config.schedule,
                           config.warmup_epochs, config.step_epochs, config.step_factor)
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=config.nesterov,
                                    weight_decay=wd)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 0.004)
    return keras.optimizers.RMSprop(lr, weight_decay=wd)


def compile_model(model: keras.Model, config: TrainConfig, *, steps_per_epoch: int) -> None:
    """SGD/… + categorical cross-entropy on one-hot labels + accuracy, as in the lab."""
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch=steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def learning_rate_at(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate the optimizer will use for its next step."""
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def summary_text(model: keras.Model) -> str:
    """Keras's ``model.summary()`` as plain text (for printing and reports)."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=72)
    return "\n".join(lines)


def load_model(path) -> keras.Model:
    """Load a run's ``model.keras`` (this module registers its custom schedule first)."""
    from pathlib import Path

    from mlplab.errors import RunError

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist; is the run complete?")
    try:
        return keras.saving.load_model(path, compile=True)
    except Exception as e:  # Keras raises many kinds for a damaged or foreign file
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise RunError(f"{path} is not a loadable Keras model ({first})") from None


def seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed`` without importing TensorFlow when it is not the backend.

    Keras's own function imports TensorFlow whenever it is installed, only to seed it:
    1.5 s and several hundred MB for a JAX run. We do the same resets it does otherwise.
    """
    import random

    import numpy as np

    if keras.backend.backend() != "jax":
        keras.utils.set_random_seed(seed)
        return
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
    except ImportError:  # a future Keras moved them: fall back to the public function
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def save_model(model: keras.Model, path) -> None:
    """``model.save`` without the TensorFlow import Keras does only for type checks.

    When TensorFlow is installed, Keras's serializer imports it (≈2 s, hundreds of MB) just
    to ask whether objects are TensorFlow shapes or dtypes; on another backend, with
    TensorFlow not imported, nothing can be. We answer "not available" for the duration.
    """
    import sys

    lazy = None
    if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
        try:
            from keras.src.utils import module_utils

            lazy = getattr(module_utils, "tensorflow", None)
        except ImportError:
            lazy = None
    if lazy is None or getattr(lazy, "_available", True) is not None:
        model.save(path)
        return
    lazy._available = False
    try:
        model.save(path)
    finally:
        lazy._available = None
