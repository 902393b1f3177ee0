"""Shared by the serving tests: one trained run per test session, and real t10k digits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

_RUN: Path | None = None


def served_run(root: Path) -> Path:
    """A run good enough to read drawn digits (≈93 % test accuracy), trained once."""
    global _RUN
    if _RUN is None:
        from mlplab.config import TrainConfig
        from mlplab.runs import start_runs

        config = TrainConfig(layers=(256,), optimizer="adam", lr=0.001, epochs=10,
                             data="mnist-sample")
        [(run, result)] = start_runs(config, runs_dir=root, name="served")
        assert result.status == "complete"
        _RUN = run.path
    return _RUN


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()
