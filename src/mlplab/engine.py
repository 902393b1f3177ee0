"""The fused JAX engine: a whole epoch in one jitted call.

Keras ``fit`` pays Python and dispatch overhead on every batch, which dominates for
small MLPs on a CPU. Here the Keras model is driven through its stateless API
(``stateless_call`` + ``optimizer.stateless_apply``) inside ``lax.scan`` over the
epoch's batches, with the data resident on the device and metrics summed on it.
Semantics follow ``fit``: the same loss function, optimizer update, dropout (the
model's own seed generators), training-mode metrics and the last partial batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import keras
import numpy as np

from mlplab.config import TrainConfig

if TYPE_CHECKING:
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


def make_loss(config: TrainConfig):
    """Per-batch mean categorical cross-entropy, exactly Keras's function."""
    def loss(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
        return jnp.mean(keras.losses.categorical_crossentropy(
            y_true, y_pred, label_smoothing=config.label_smoothing))
    return loss


def to_inputs(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """uint8 pixels and integer labels → the lab's float32 / 255 and one-hot (on device)."""
    return x.astype(jnp.float32) / 255.0, jax.nn.one_hot(y, 10, dtype=jnp.float32)


def correct(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
    return jnp.sum(jnp.argmax(y_true, -1) == jnp.argmax(y_pred, -1)).astype(jnp.float32)


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
        self.epoch_fn = jax.jit(self._build_epoch(len(split.x_train)))
        self.eval_fn = jax.jit(self._evaluate)

    # ------------------------------------------------------------ compiled pieces

    def _build_epoch(self, n: int):
        config, model, optimizer = self.config, self.model, self.model.optimizer
        loss_fn = make_loss(config)
        bs = config.batch_size
        full, rem = divmod(n, bs)

        def compute_loss(tv, ntv, xb, yb):
            y_pred, ntv = model.stateless_call(tv, ntv, xb, training=True)
            return loss_fn(yb, y_pred), (y_pred, ntv)

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

        def epoch(tv, ntv, ov, x, y, order, key):
            def step(carry, batch):
                tv, ntv, ov, loss_sum, hits = carry
                i, idx = batch
                xb, yb = self.gather(x, y, idx, jax.random.fold_in(key, i))
                (loss, (y_pred, ntv)), grads = grad_fn(tv, ntv, xb, yb)
                tv, ov = optimizer.stateless_apply(ov, grads, tv)
                hits = hits + correct(yb, y_pred)
                return (tv, ntv, ov, loss_sum + loss * idx.shape[0], hits), None

            carry = (tv, ntv, ov, jnp.float32(0), jnp.float32(0))
            if full:
                batches = (jnp.arange(full), order[:full * bs].reshape(full, bs))
                carry, _ = jax.lax.scan(step, carry, batches)
            if rem:  # the last partial batch, as fit does
                carry, _ = step(carry, (jnp.int32(full), order[full * bs:]))
            tv, ntv, ov, loss_sum, hits = carry
            return tv, ntv, ov, loss_sum / n, hits / n

        return epoch

    def gather(self, x: jax.Array, y: jax.Array, idx: jax.Array,
               key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One batch from the resident data, augmented on the device when configured."""
        xb, yb = to_inputs(x[idx], y[idx])
        if self.config.augments:
            from mlplab.augment import augment_images

            xb = augment_images(key, xb.reshape(-1, 28, 28), self.config).reshape(xb.shape)
        return xb, yb

    def _evaluate(self, tv, ntv, x, y):
        x, y = to_inputs(x, y)
        y_pred, _ = self.model.stateless_call(tv, ntv, x, training=False)
        per_sample = keras.losses.categorical_crossentropy(
            y, y_pred, label_smoothing=self.config.label_smoothing)
        return jnp.mean(per_sample), correct(y, y_pred) / x.shape[0]

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
        tv, ntv, ov, loss, acc = self.epoch_fn(tv, ntv, ov, self.x, self.y, order, key)
        val_loss, val_acc = self.eval_fn(tv, ntv, self.x_val, self.y_val)
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
    """A jitted ``x → probabilities`` for inference (no ``model.predict`` overhead).

    The weights are snapshotted: Keras's own jitted functions donate the variables'
    buffers, so holding on to ``v.value`` would break after a later ``fit``/``predict``.
    """
    tv = [jnp.array(v.value, copy=True) for v in model.trainable_variables]
    ntv = [jnp.array(v.value, copy=True) for v in model.non_trainable_variables]

    @jax.jit
    def forward(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    return lambda x: np.asarray(forward(tv, ntv, jnp.asarray(x, dtype=jnp.float32)))
