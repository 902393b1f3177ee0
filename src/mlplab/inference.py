"""Inference in NumPy for the MLPs mlplab builds, from a live Keras model or straight
from a run's ``model.keras`` file.

A digit through a small MLP is a few matrix products: NumPy does one in about 10 µs. Keras
(and JAX under it) takes seconds to import and a few hundred MB: that, not the model, is
what ``mlplab predict`` on a photo used to wait for. So a ``.keras`` file whose layers are
all ones mirrored here (Dense, Dropout, BatchNormalization, Activation, float32) is read
with ``zipfile``, ``json`` and ``h5py`` (which Keras saves with) alone; anything else
(another layer, activation, dtype or file layout) is left to Keras (:func:`read_forward`
returns None), never guessed at.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "gelu": _gelu,
    "softmax": _softmax,
}

Step = Callable[[np.ndarray], np.ndarray]


def dense_step(kernel: np.ndarray, bias: np.ndarray | None, activation: str) -> Step | None:
    """``activation(x @ kernel + bias)``; None for an activation not mirrored here."""
    act = ACTIVATIONS.get(activation)
    if act is None:
        return None
    k = np.asarray(kernel, np.float32)
    b = np.asarray(bias, np.float32) if bias is not None else 0
    return lambda x: act(x @ k + b)


def activation_step(activation: str) -> Step | None:
    return ACTIVATIONS.get(activation)


def batch_norm_step(moving_mean: np.ndarray, moving_variance: np.ndarray, epsilon: float,
                    gamma: np.ndarray | None = None, beta: np.ndarray | None = None) -> Step:
    """Inference-mode batch normalization folded into one scale and shift."""
    scale = 1 / np.sqrt(np.asarray(moving_variance) + epsilon)
    if gamma is not None:
        scale = scale * np.asarray(gamma)
    shift = -np.asarray(moving_mean) * scale
    if beta is not None:
        shift = shift + np.asarray(beta)
    s, t = scale.astype(np.float32), shift.astype(np.float32)
    return lambda x: x * s + t


@dataclass(frozen=True)
class Forward:
    """An inference pass: ``(n, inputs)`` float32 → ``(n, outputs)``; ``parameters`` is
    the model's weight count (Keras's ``count_params``)."""

    steps: tuple[Step, ...]
    inputs: int
    outputs: int
    parameters: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        for step in self.steps:
            x = step(x)
        return x


def load_forward(path: str | Path) -> Forward:
    """A run's ``model.keras`` ready for inference: read in NumPy when it holds mlplab's
    layers only (:func:`read_forward`), else loaded by Keras (:func:`mlplab.engine.
    predict_fn` then picks NumPy or a jitted JAX call). Raises RunError for a missing or
    unloadable file, as :func:`mlplab.models.load_model`."""
    forward = read_forward(path)  # (None for a missing file too: load_model says so)
    if forward is not None:
        return forward
    from mlplab.models import load_model

    return keras_forward(load_model(path))


def keras_forward(model) -> Forward:
    """A live Keras model as a :class:`Forward` of flat inputs (``(n, pixels)``, reshaped to
    the model's own input shape), through :func:`mlplab.engine.predict_fn`."""
    from mlplab.engine import predict_fn

    fn, shape = predict_fn(model), tuple(model.input_shape[1:])
    return Forward((lambda x: fn(x.reshape(-1, *shape)),), math.prod(shape),
                   math.prod(model.output_shape[1:]), int(model.count_params()))


# ---------------------------------------------------------------- from a .keras file

MIRRORED = {"InputLayer", "Dense", "Dropout", "BatchNormalization", "Activation"}


def read_forward(path: str | Path) -> Forward | None:
    """The model in a Keras 3 ``.keras`` file as a NumPy :class:`Forward`, or None when it
    is anything but a float32 Sequential stack of the layers mirrored here, or the file
    is not laid out as expected (Keras then loads it, and reports what is wrong)."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")
        return _forward(config, weights)
    except Exception:  # a damaged or foreign file: Keras's load gives the real message
        return None


def _float32(layer: dict) -> bool:
    dtype = layer.get("dtype")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    return dtype in (None, "float32")


def _variables(weights: bytes) -> dict[str, list[np.ndarray]]:
    """Each layer's variables by the layer's name, in Keras's order (``vars/0``, …)."""
    import h5py

    out: dict[str, list[np.ndarray]] = {}
    with h5py.File(io.BytesIO(weights), "r") as f:
        for group in f["layers"].values():
            if "vars" not in group:
                continue
            own = group["vars"]
            name = own.attrs.get("name")
            if isinstance(name, bytes):
                name = name.decode()
            if not isinstance(name, str) or name in out or set(group) - {"vars"}:
                raise ValueError("unexpected weights layout")  # (nested layers: Keras's job)
            out[name] = [np.asarray(own[str(i)]) for i in range(len(own))]
    return out


def _forward(config: dict, weights: bytes) -> Forward | None:
    if config.get("class_name") != "Sequential":
        return None
    layers = config["config"]["layers"]
    if any(layer.get("class_name") not in MIRRORED or not _float32(layer.get("config", {}))
           for layer in layers):
        return None
    variables = _variables(weights)
    parameters = sum(v.size for own in variables.values() for v in own)
    steps: list[Step] = []
    width = inputs = None
    for layer in layers:
        kind, c = layer["class_name"], layer["config"]
        own = variables.pop(c.get("name"), [])
        if kind == "InputLayer":
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if not shape or len(shape) != 2 or own:
                return None
            width = inputs = int(shape[1])
            continue
        if width is None:
            return None
        if kind == "Dropout" and not own:
            continue
        if kind == "Activation" and not own and isinstance(c.get("activation"), str):
            step = activation_step(c["activation"])
        elif kind == "Dense":
            activation, use_bias = c.get("activation"), c.get("use_bias", True)
            if not isinstance(activation, str) or c.get("quantization_config") or \
                    c.get("lora_rank") or len(own) != (2 if use_bias else 1):
                return None
            kernel, bias = own[0], own[1] if use_bias else None
            if kernel.shape != (width, c["units"]) or (bias is not None and
                                                       bias.shape != (c["units"],)):
                return None
            step, width = dense_step(kernel, bias, activation), int(c["units"])
        elif kind == "BatchNormalization":
            axis = c.get("axis", -1)
            center, scale = c.get("center", True), c.get("scale", True)
            if axis not in (-1, [-1], 1, [1]) or len(own) != 2 + center + scale or \
                    any(v.shape != (width,) for v in own):
                return None
            gamma = own.pop(0) if scale else None
            beta = own.pop(0) if center else None
            step = batch_norm_step(own[0], own[1], float(c.get("epsilon", 1e-3)), gamma, beta)
        else:
            return None
        if step is None:
            return None
        steps.append(step)
    if variables or inputs is None or not steps:  # weights no layer took: not understood
        return None
    return Forward(tuple(steps), inputs, width, parameters)
