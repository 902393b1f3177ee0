"""Predicting people's own digits with a trained run (``mlplab predict``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlplab.errors import ImageError, MlplabError, RunError

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


Progress = Callable[[int, int], None]  # (files done, files in all)
PARALLEL_FROM = 8  # files: below this, starting worker processes costs more than it saves


def default_jobs() -> int:
    """The cores this process may use."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def prepare_file(path: Path, normalize_stroke: bool, show: bool
                 ) -> tuple[np.ndarray | None, bytes | None, str]:
    """One file → (its 28×28 input, its "what the model sees" PNG when ``show``, "") or
    (None, None, a one-line error naming the file). Runs in worker processes too."""
    from mlplab import preprocess

    try:
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            raise ImageError(f"{path}: no such file")
        image = preprocess.decode_image(data, name=str(path))
        x = preprocess.to_mnist(image, normalize_stroke=normalize_stroke)
        seen = None
        if show:
            import io

            buf = io.BytesIO()
            preprocess.see(image, x).save(buf, format="PNG")
            seen = buf.getvalue()
        return x, seen, ""
    except ImageError as e:
        message = str(e)
        return None, None, message if message.startswith(str(path)) else f"{path}: {message}"


def prepare_files(files: list[Path], *, normalize_stroke: bool = False, show: bool = False,
                  jobs: int | None = None, progress: Progress | None = None
                  ) -> list[tuple[np.ndarray | None, bytes | None, str]]:
    """:func:`prepare_file` for each file, in order, on ``jobs`` processes (default: every
    core) when there are enough files to pay for starting them (a folder of 12-MP photos
    is mostly JPEG decoding, which one process does one image at a time). ``progress`` is
    told (files done, files in all) after each file."""
    import functools

    work = functools.partial(prepare_file, normalize_stroke=normalize_stroke, show=show)
    return map_in_processes(work, files, jobs=jobs, progress=progress,
                            parallel_from=PARALLEL_FROM)


def map_in_processes(work: Callable, items: list, *, jobs: int | None = None,
                     progress: Progress | None = None, parallel_from: int = 2) -> list:
    """``[work(item) for item in items]``, in order, on ``jobs`` processes (default: every
    core) from ``parallel_from`` items on (``work`` and the items must pickle then).
    ``progress`` is told (items done, items in all) after each item."""
    jobs = default_jobs() if jobs is None else max(1, jobs)

    def told(results: Iterable) -> list:
        out = []
        for result in results:
            out.append(result)
            if progress is not None:
                progress(len(out), len(items))
        return out

    if jobs == 1 or len(items) < max(2, parallel_from):
        return told(work(item) for item in items)
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # fork starts in milliseconds, but not once JAX's threads run (a library caller who
    # has trained in this process): then fresh interpreters.
    method = "fork" if sys.platform == "linux" and "jax" not in sys.modules else "spawn"
    try:
        with ProcessPoolExecutor(min(jobs, len(items)),
                                 mp_context=multiprocessing.get_context(method)) as pool:
            return told(pool.map(work, items, chunksize=max(1, len(items) // (8 * jobs))))
    except BrokenProcessPool:
        raise MlplabError(f"a process preprocessing the images stopped (out of memory with "
                          f"{jobs} at once?); try fewer: --jobs 1") from None


def predict_files(run_path: str | Path, paths: list[Path], *, show: Path | None = None,
                  normalize_stroke: bool = False, jobs: int | None = None,
                  progress: Progress | None = None) -> list[Prediction]:
    """Preprocess every file (one error per bad file; on ``jobs`` processes, default every
    core) and predict the good ones in a batch.

    The model is loaded only once some image has passed (and Keras only for a model
    :func:`mlplab.inference.read_forward` cannot read): a refused decompression bomb or a wrong file
    costs milliseconds and a few MB.
    """
    from mlplab.runs import open_run, write_bytes

    run = open_run(run_path)  # a folder that is not a run fails before any work
    files = expand_inputs(paths)
    results, inputs = [], []
    prepared = prepare_files(files, normalize_stroke=normalize_stroke, show=show is not None,
                             jobs=jobs, progress=progress)
    for path, (x, seen, error) in zip(files, prepared, strict=True):
        results.append(Prediction(str(path), error=error))
        if x is not None:
            inputs.append(x)
        if seen is not None:
            write_bytes(show / f"{path.stem}.seen.png", seen)
    if inputs:
        from mlplab.inference import load_forward

        forward = load_forward(run.model_path)
        if forward.inputs != 784:
            raise RunError(f"{run_path}: its model takes {forward.inputs} inputs, not "
                           "28×28 images")
        probs = forward(np.stack(inputs).reshape(len(inputs), -1))
        good = [r for r in results if not r.error]
        for r, p in zip(good, probs, strict=True):
            r.probabilities = [round(float(v), 6) for v in p]
            r.digit = int(np.argmax(p))
    return results
