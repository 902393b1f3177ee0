"""Predicting people's own digits with a trained run (``mlplab predict``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlplab.errors import ImageError, RunError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif",
                  ".heic", ".heif"}  # (HEIC: with mlplab[heic]; without, one error each)


@dataclass
class Prediction:
    file: str
    digit: int | None = None
    probabilities: list[float] = field(default_factory=list)
    error: str = ""

    def top(self, k: int) -> list[tuple[int, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), float(self.probabilities[i])) for i in order]

    def to_json(self) -> dict:
        if self.error:
            return {"file": self.file, "error": self.error}
        return {"file": self.file, "digit": self.digit, "probabilities": self.probabilities}


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; folders become their image files, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def predict_files(run_path: str | Path, paths: list[Path], *, show: Path | None = None,
                  normalize_stroke: bool = False) -> list[Prediction]:
    """Preprocess every file (one error per bad file) and predict the good ones in a batch.

    The model (and Keras with it) is loaded only once some image has passed: a refused
    decompression bomb or a wrong file costs milliseconds and a few MB, not a Keras start.
    """
    from mlplab import preprocess
    from mlplab.runs import open_run, write_bytes

    run = open_run(run_path)  # a folder that is not a run fails before any work
    results, inputs = [], []
    for path in expand_inputs(paths):
        result = Prediction(str(path))
        try:
            data = path.read_bytes() if path.is_file() else None
            if data is None:
                raise ImageError(f"{path}: no such file")
            image = preprocess.decode_image(data, name=str(path))
            x = preprocess.to_mnist(image, normalize_stroke=normalize_stroke)
            inputs.append(x)
            if show is not None:
                import io

                buf = io.BytesIO()
                preprocess.see(image, x).save(buf, format="PNG")
                write_bytes(show / f"{path.stem}.seen.png", buf.getvalue())
        except ImageError as e:
            message = str(e)
            result.error = message if message.startswith(str(path)) else f"{path}: {message}"
        results.append(result)
    if inputs:
        from mlplab.engine import predict_fn
        from mlplab.models import load_model

        model = load_model(run.model_path)
        if model.input_shape[-1] != 784:
            raise RunError(f"{run_path}: its model takes {model.input_shape[-1]} inputs, not "
                           "28×28 images")
        probs = predict_fn(model)(np.stack(inputs).reshape(len(inputs), -1))
        good = [r for r in results if not r.error]
        for r, p in zip(good, probs, strict=True):
            r.probabilities = [round(float(v), 6) for v in p]
            r.digit = int(np.argmax(p))
    return results
