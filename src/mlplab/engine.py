"""The fused JAX engine: a whole epoch in one jitted call.

Keras ``fit`` pays Python and dispatch overhead on every batch, which dominates for
small MLPs on a CPU. Here the Keras model is driven through its stateless API
(``stateless_call`` + ``optimizer.stateless_apply``) inside ``lax.scan`` over the
epoch's batches, with the data resident on the device and metrics summed on it.
Semantics follow ``fit``: the same loss function, optimizer update, dropout (the
model's own seed generators), training-mode metrics and the last partial batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import keras
import numpy as np

from mlplab.config import TrainConfig

if TYPE_CHECKING:
    from mlplab.inference import Forward
    from mlplab.training import Split


def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache, so later runs skip XLA compiles of equal shapes."""
    if os.environ.get("MLPLAB_NO_COMPILE_CACHE"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "mlplab" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home only costs compile time
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


enable_compilation_cache()


def to_inputs(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """uint8 pixels and integer labels → the lab's float32 / 255 and one-hot (on device)."""
    return x.astype(jnp.float32) / 255.0, jax.nn.one_hot(y, 10, dtype=jnp.float32)


def gather(x: jax.Array, y: jax.Array, idx: jax.Array, key: jax.Array, config: TrainConfig,
           augments: bool) -> tuple[jax.Array, jax.Array]:
    """One batch from the resident data, augmented on the device when configured."""
    xb, yb = to_inputs(x[idx], y[idx])
    if augments:
        from mlplab.augment import augment_images

        xb = augment_images(key, xb.reshape(-1, 28, 28), config).reshape(xb.shape)
    return xb, yb


def correct(y_true: jax.Array, y_pred: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """How many predictions are right (each counted by its weight, when given)."""
    hits = (jnp.argmax(y_true, -1) == jnp.argmax(y_pred, -1)).astype(jnp.float32)
    return jnp.sum(hits if weights is None else hits * weights)


# Compiled epoch (+ validation) functions of recent engines, by everything their trace bakes
# in. Values that only flow through it (learning rate, dropout rate, weight decay, seed) are
# inputs, so a tuning study or a seed study compiles once per architecture, not per run.
_COMPILED: OrderedDict[tuple, Callable] = OrderedDict()
COMPILED_KEEP = 16


def trace_key(config: TrainConfig, model: keras.Model, n: int) -> tuple | None:
    """What a compiled epoch depends on, or None when it cannot be shared safely."""
    if any(isinstance(layer, keras.layers.Dropout) and layer.noise_shape is not None
           for layer in model.layers):
        return None
    static = {"seed": 0, "patience": 0, "restore_best": False, "data": "", "limit": None,
              "validation": "", "dropout": 0.5 if config.dropout else 0.0,
              "weight_decay": 1.0 if config.weight_decay else 0.0}
    if config.schedule == "constant" and not config.warmup_epochs:
        static.update(lr=0.0, epochs=1)  # a plain rate is an optimizer variable
    return (tuple(sorted({**asdict(config), **static}.items())), model.input_shape, n)


@contextlib.contextmanager
def runtime_hyperparameters(model: keras.Model, hp: dict[str, jax.Array]) -> Iterator[None]:
    """While tracing: the dropout rate and weight decay read from traced inputs.

    Keras keeps both as Python floats, which a trace would bake in as constants. Dropout
    is Keras's own JAX implementation with the keep probability as an input; weight decay
    is read by the optimizer through ``ops.cast(self.weight_decay)``.
    """
    from keras.src.backend.jax.random import jax_draw_seed

    optimizer = model.optimizer
    saved_wd = optimizer.weight_decay
    patched = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0:
            def call(inputs, training=False, layer=layer):
                if not training:
                    return inputs
                keep = hp["keep"]
                mask = jax.random.bernoulli(jax_draw_seed(layer.seed_generator), p=keep,
                                            shape=inputs.shape)
                return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))
            layer.call = call
            patched.append(layer)
    if saved_wd is not None:
        optimizer.weight_decay = hp["weight_decay"]
    try:
        yield
    finally:
        optimizer.weight_decay = saved_wd
        for layer in patched:
            del layer.call


def hyperparameters(config: TrainConfig, model: keras.Model) -> dict[str, jax.Array]:
    """The runtime values of :func:`runtime_hyperparameters` (rounded as Keras rounds them)."""
    return {"keep": jnp.float32(1.0 - config.dropout),
            "weight_decay": jnp.float32(model.optimizer.weight_decay or 0.0)}


class FusedEngine:
    """Runs epochs of ``config`` on ``model``; the Keras variables are updated after each."""

    def __init__(self, config: TrainConfig, model: keras.Model, split: Split):
        self.config, self.model = config, model
        # Bytes stay resident on the device for the whole run: no per-epoch copy, and a
        # quarter of the memory of float32; batches are converted as they are gathered.
        self.x = jnp.asarray(split.x_train)
        self.y = jnp.asarray(split.y_train)
        self.x_val = jnp.asarray(split.x_val)
        self.y_val = jnp.asarray(split.y_val)
        self.hp = hyperparameters(config, model)
        key = trace_key(config, model, len(split.x_train))
        if key is not None and key in _COMPILED:
            _COMPILED.move_to_end(key)
            self.epoch_fn = _COMPILED[key]
            return
        epoch, evaluate = self._build_epoch(len(split.x_train)), self._build_evaluate()

        def epoch_and_validation(tv, ntv, ov, x, y, x_val, y_val, order, key, hp):
            """One compiled program for both (each compile has a fixed cost of its own)."""
            tv, ntv, ov, loss, acc = epoch(tv, ntv, ov, x, y, order, key, hp)
            return (tv, ntv, ov, loss, acc) + evaluate(tv, ntv, x_val, y_val)

        self.epoch_fn = jax.jit(epoch_and_validation)
        if key is not None:
            _COMPILED[key] = self.epoch_fn
            while len(_COMPILED) > COMPILED_KEEP:
                _COMPILED.popitem(last=False)

    # ------------------------------------------------------------ compiled pieces

    def _build_epoch(self, n: int):
        config, model, optimizer = self.config, self.model, self.model.optimizer
        smoothing, augments = config.label_smoothing, config.augments
        bs = config.batch_size
        full, rem = divmod(n, bs)
        # The last partial batch (fit trains on it too) is padded to a full batch whose padding
        # weighs nothing, so one compiled step serves every batch: half the compile time.
        # JAX draws random bits by element index, so the real rows get the very dropout masks
        # of an unpadded batch. Batch statistics would see the padding: batch norm keeps a
        # separate step for the partial batch.
        padded = bool(rem) and not config.batch_norm

        def compute_loss(tv, ntv, xb, yb, w):
            y_pred, ntv = model.stateless_call(tv, ntv, xb, training=True)
            per_sample = keras.losses.categorical_crossentropy(yb, y_pred,
                                                               label_smoothing=smoothing)
            return jnp.sum(per_sample * w) / jnp.sum(w), (y_pred, ntv)  # fit's batch mean

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

        def epoch(tv, ntv, ov, x, y, order, key, hp):
            def step(carry, batch):
                tv, ntv, ov, loss_sum, hits = carry
                i, idx, w = batch
                xb, yb = gather(x, y, idx, jax.random.fold_in(key, i), config, augments)
                (loss, (y_pred, ntv)), grads = grad_fn(tv, ntv, xb, yb, w)
                tv, ov = optimizer.stateless_apply(ov, grads, tv)
                hits = hits + correct(yb, y_pred, w)
                return (tv, ntv, ov, loss_sum + loss * jnp.sum(w), hits), None

            with runtime_hyperparameters(model, hp):
                carry = (tv, ntv, ov, jnp.float32(0), jnp.float32(0))
                steps = full + 1 if padded else full
                if padded:
                    order = jnp.concatenate([order, jnp.zeros(bs - rem, order.dtype)])
                if steps:
                    weights = (jnp.arange(steps * bs) < n).astype(jnp.float32)
                    batches = (jnp.arange(steps), order[:steps * bs].reshape(steps, bs),
                               weights.reshape(steps, bs))
                    carry, _ = jax.lax.scan(step, carry, batches)
                if rem and not padded:
                    carry, _ = step(carry, (jnp.int32(full), order[full * bs:],
                                            jnp.ones(rem, jnp.float32)))
            tv, ntv, ov, loss_sum, hits = carry
            return tv, ntv, ov, loss_sum / n, hits / n

        return epoch

    def _build_evaluate(self):
        model, smoothing = self.model, self.config.label_smoothing  # not self: no data kept

        def evaluate(tv, ntv, x, y):
            x, y = to_inputs(x, y)
            y_pred, _ = model.stateless_call(tv, ntv, x, training=False)
            per_sample = keras.losses.categorical_crossentropy(y, y_pred,
                                                               label_smoothing=smoothing)
            return jnp.mean(per_sample), correct(y, y_pred) / x.shape[0]

        return evaluate

    # ------------------------------------------------------------ driver

    def run_epoch(self, epoch: int) -> dict:
        from mlplab.models import learning_rate_at
        from mlplab.training import epoch_permutation

        model = self.model
        lr = learning_rate_at(model.optimizer)
        order = jnp.asarray(epoch_permutation(self.config.seed, epoch, self.x.shape[0]))
        key = jax.random.fold_in(jax.random.key(self.config.seed), epoch)
        start = time.perf_counter()
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        ov = [v.value for v in model.optimizer.variables]
        tv, ntv, ov, loss, acc, val_loss, val_acc = self.epoch_fn(
            tv, ntv, ov, self.x, self.y, self.x_val, self.y_val, order, key, self.hp)
        loss, acc, val_loss, val_acc = (float(v) for v in
                                        jax.device_get((loss, acc, val_loss, val_acc)))
        seconds = time.perf_counter() - start
        for variables, values in ((model.trainable_variables, tv),
                                  (model.non_trainable_variables, ntv),
                                  (model.optimizer.variables, ov)):
            for v, value in zip(variables, values, strict=True):
                v.assign(value)
        return {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "val_loss": val_loss,
                "val_accuracy": val_acc, "lr": lr, "seconds": seconds}


def predict_fn(model: keras.Model):
    """A fast ``x → probabilities`` for inference (no ``model.predict`` overhead).

    For the layers mlplab builds (Dense, Dropout, BatchNormalization, Activation) the
    forward pass runs in NumPy: one digit takes about 10 µs, where even a jitted JAX call
    pays 50-100 µs of dispatch and ``model.predict`` half a millisecond or more. Any other
    model, or a NumPy pass that disagrees with Keras on a check batch, uses a jitted
    ``stateless_call``. The weights are snapshotted either way: Keras's own jitted functions
    donate the variables' buffers, so holding on to ``v.value`` would break after a later
    ``fit``/``predict``.
    """
    tv = [jnp.array(v.value, copy=True) for v in model.trainable_variables]
    ntv = [jnp.array(v.value, copy=True) for v in model.non_trainable_variables]

    @jax.jit
    def forward(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    def with_jax(x):
        return np.asarray(forward(tv, ntv, jnp.asarray(x, dtype=jnp.float32)))

    numpy_forward = numpy_layers(model)
    if numpy_forward is None:
        return with_jax
    check = np.random.default_rng(0).random((8, model.input_shape[-1]), dtype=np.float32)
    if not np.allclose(numpy_forward(check), with_jax(check), atol=1e-5, rtol=1e-4):
        return with_jax
    return numpy_forward


def numpy_layers(model: keras.Model) -> Forward | None:
    """The model's inference pass in NumPy, or None if it has a layer we do not mirror."""
    from mlplab.inference import Forward, activation_step, batch_norm_step, dense_step

    steps = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            continue
        name = getattr(getattr(layer, "activation", None), "__name__", None)
        if isinstance(layer, keras.layers.Activation):
            step = activation_step(name)
        elif isinstance(layer, keras.layers.Dense):
            step = dense_step(np.array(layer.kernel.value), np.array(layer.bias.value)
                              if layer.use_bias else None, name)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, [-1]):
            step = batch_norm_step(
                np.array(layer.moving_mean.value), np.array(layer.moving_variance.value),
                layer.epsilon, np.array(layer.gamma.value) if layer.scale else None,
                np.array(layer.beta.value) if layer.center else None)
        else:
            return None
        if step is None:
            return None
        steps.append(step)
    return Forward(tuple(steps), int(model.input_shape[-1]), int(model.output_shape[-1]),
                   int(model.count_params()))
