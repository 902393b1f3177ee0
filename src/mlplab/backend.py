"""How JAX's CPU backend is started for training: its intra-op thread count.

Imported by training and tuning before the first JAX array exists; cheap to import (JAX
itself is imported only when JAX is the Keras backend).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplab.config import TrainConfig

# XLA's CPU client splits each matrix product over an intra-op pool of one thread per core.
# For a small MLP step (model_1 on a batch of 64 is 3.3M multiply-adds) the halves are a few
# microseconds of work each: two threads gain 2-4 %, and whenever the other core is busy
# (the lab's side thread, another program, a neighbour on a shared VM) every step waits for
# the slower half, so epochs jump from 0.09 s to 0.14-0.16 s. Below this size one thread is
# steady; above it (the best recipe, 1024-1024 at batch 128, is 238M) two threads are
# 35-40 % faster. The pool is made once, when JAX first starts its CPU backend.
ONE_THREAD_MAX_MACS = 16_000_000


def step_macs(config: TrainConfig, input_dim: int = 784, num_classes: int = 10) -> int:
    """Multiply-adds of one batch's forward pass through the config's Dense layers."""
    widths = (input_dim, *config.layers, num_classes)
    return config.batch_size * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def start_backend(config: TrainConfig | None = None, *, input_dim: int = 784) -> int | None:
    """Start JAX's CPU backend: one intra-op thread for a small model's steps, else one per
    core. Returns the thread count it chose, or None when it had no say (the backend was
    already running, JAX is not the Keras backend, or PJRT_NPROC/NPROC is set by the user).
    """
    if os.environ.get("KERAS_BACKEND", "jax") != "jax" or \
            any(os.environ.get(v) for v in ("PJRT_NPROC", "NPROC")):
        return None  # (checked first: JAX is not even imported for another backend)
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return None
    if config is None or step_macs(config, input_dim) > ONE_THREAD_MAX_MACS:
        jax.devices()
        cores = getattr(os, "sched_getaffinity", None)  # XLA's default: the usable cores
        return len(cores(0)) if cores else (os.cpu_count() or 1)
    os.environ["PJRT_NPROC"] = "1"  # read once, when the client is made
    try:
        jax.devices()
    finally:
        del os.environ["PJRT_NPROC"]  # not inherited by child processes (benchmarks, tests)
    return 1
