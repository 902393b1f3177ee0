"""Shared fixtures: offline mode, a tiny synthetic data set and the real embedded sample."""

from __future__ import annotations

import os

os.environ["MLPLAB_OFFLINE"] = "1"  # tests never download
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlplab  # noqa: E402,F401  (sets the Keras backend before any keras import)
from mlplab.data import Dataset  # noqa: E402


@pytest.fixture(scope="session")
def sample():
    """The embedded real data: 5,000 MNIST training digits and the 10,000 t10k digits."""
    from mlplab.data import load_dataset

    return load_dataset("mnist-sample")


@pytest.fixture
def tiny() -> Dataset:
    """A learnable synthetic set: each class lights up its own block of pixels."""
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 * label:2 * label + 6, 4:24] = 220
        return x, y

    x_train, y_train = make(300)
    x_test, y_test = make(100)
    return Dataset("tiny", x_train, y_train, x_test, y_test, {"tiny": "0" * 64})


@pytest.fixture
def npz_dir(tmp_path, tiny):
    """The tiny data set saved as an .npz data source."""
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=tiny.x_train, y_train=tiny.y_train, x_test=tiny.x_test,
             y_test=tiny.y_test)
    return path


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory, sample):
    """One small lab (all three models, 2 epochs, 800 training digits) shared by the tests
    that read its runs, reports and evaluation panels. Tests must not modify it: copy a run
    first (``shutil.copytree``)."""
    from mlplab.lab import LabOptions, run_lab

    out = tmp_path_factory.mktemp("lab") / "lab"
    run_lab(sample, out, LabOptions(data="mnist-sample", epochs=2, limit=800))
    return out
