"""``mlplab serve``: a trained run behind an HTTP API and a draw-a-digit web page.

The model is loaded once, when the app is created, by :func:`mlplab.inference.
load_forward` (mlplab's MLPs in NumPy without starting Keras; others through
:func:`mlplab.engine.predict_fn`, never ``model.predict``), and called on a few fixed
batch sizes that are compiled (for JAX) at start-up. The web layer only parses input: every image
goes through :mod:`mlplab.preprocess`, every user error is an :class:`MlplabError`
turned into a 4xx answer with a one-line message.

Latency comes first. Small requests (a canvas PNG, 784 pixels) are decoded and predicted
on the event loop with no thread hop; large uploads are decoded in a worker thread so that
they never stall the loop. With ``batch=True`` the requests that arrive in the same turn
of the event loop share one model call (micro-batching); it saves model time, but each
request then also waits for its neighbours' decoding, so it is off by default — the model
call is ≈0.1 ms of a ≈1 ms request (see README, Serving).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mlplab import __version__
from mlplab.errors import ConfigError, ImageError, MlplabError, RunError

STATIC = Path(__file__).parent / "static"
BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # batch sizes compiled at start-up; larger inputs chunk
VERSION_HEADER = "X-Mlplab-Version"
TIME_HEADER = "X-Process-Time"  # milliseconds from the app receiving the request to answering


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_bytes: int = 10 * 2**20  # request body; more is 413
    max_pixels: int = 25_000_000  # decoded image area; more is refused before decoding
    inline_bytes: int = 64 * 1024  # smaller images are decoded on the event loop (no hop)


class RequestError(MlplabError):
    """A request that cannot be served, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- the model


class Predictor:
    """A loaded run: ``(n, 784)`` float32 in [0, 1] → ``(n, 10)`` probabilities."""

    def __init__(self, run_path: str | Path, *, batch: bool = False):
        from mlplab.inference import load_forward
        from mlplab.runs import open_run

        self.run = open_run(run_path)
        self.fn = load_forward(self.run.model_path)
        if self.fn.inputs != 784 or self.fn.outputs != 10:
            raise RunError(f"{self.run.path}: its model maps {self.fn.inputs} "
                           f"inputs to {self.fn.outputs} classes, not 28×28 "
                           "digits to 10")
        self.batch = batch
        self.calls = 0
        self.pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self.flush_scheduled = False
        for n in BUCKETS:  # compile every shape now, not on a user's request
            self.fn(np.zeros((n, 784), np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for ``x`` (n, 784), padded to a compiled batch size."""
        n = len(x)
        top = BUCKETS[-1]
        if n > top:
            return np.concatenate([self(x[i:i + top]) for i in range(0, n, top)])
        size = next(b for b in BUCKETS if b >= n)
        if size != n:
            x = np.concatenate([x, np.zeros((size - n, 784), np.float32)])
        self.calls += 1
        return self.fn(x)[:n]

    async def predict_one(self, x: np.ndarray) -> np.ndarray:
        """One (784,) input's probabilities; batched with its neighbours when enabled."""
        if not self.batch:
            return self(x[None])[0]
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((x, future))
        if not self.flush_scheduled:  # after the requests already ready in this loop turn
            self.flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch, self.pending = self.pending, []
        try:
            probs = self(np.stack([x for x, _ in batch]))
        except Exception as e:  # a bug, not an input: every waiter gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), p in zip(batch, probs, strict=True):
            if not future.done():  # a client that went away cancelled its request
                future.set_result(p)

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/model`` says about the run."""
        run = self.run
        metrics, env = run.metrics(), run.environment()
        try:
            config = run.config.to_dict()
        except MlplabError:
            config = {}
        accuracy = None
        evaluation = run.path / "evaluation.json"
        if evaluation.is_file():
            try:
                accuracy = json.loads(evaluation.read_text()).get("accuracy")
            except (OSError, ValueError):
                accuracy = None
        if accuracy is None and config.get("validation") == "test":
            accuracy = (metrics.get("final") or {}).get("val_accuracy")
        data = env.get("data") or {"name": config.get("data")}
        return {"run": run.name, "config": config,
                "parameters": self.fn.parameters,
                "test_accuracy": accuracy, "data": data,
                "epochs_done": metrics.get("epochs_done"), "mlplab": __version__}


# ---------------------------------------------------------------- parsing inputs


def clean_name(filename: str | None) -> str:
    """An uploaded file's name for messages only: no folders, no control characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable())[:80].strip()
    return name or "upload"


def pixels_input(value: Any) -> np.ndarray:
    """784 MNIST-style numbers (flat or 28×28; 0–1 or 0–255, white ink on black)."""
    if isinstance(value, list) and len(value) == 28 and all(isinstance(r, list) for r in value):
        value = [v for row in value for v in row]
    if not isinstance(value, list):
        raise RequestError('"pixels" must be a list of 784 numbers (a 28×28 digit)')
    if len(value) != 784:
        raise RequestError(f'"pixels" has {len(value)} values; a 28×28 digit has 784')
    if not all(type(v) in (int, float) for v in value):
        raise RequestError('"pixels" must hold only numbers')
    x = np.asarray(value, dtype=np.float64)
    if not np.isfinite(x).all():
        raise RequestError('"pixels" must be finite numbers')
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise RequestError(f'"pixels" must lie in 0–1 or 0–255, not {lo:g}–{hi:g}')
    return (x / 255.0 if hi > 1 else x).astype(np.float32)


def data_url_bytes(value: Any) -> bytes:
    """``data:image/png;base64,…`` (or bare base64) → the image file's bytes."""
    if not isinstance(value, str):
        raise RequestError('"image" must be a data URL such as data:image/png;base64,…')
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise RequestError('"image" must be a base64 data URL (data:image/png;base64,…)')
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError('"image" is not valid base64') from None


def json_input(body: bytes) -> tuple[str, Any]:
    """A JSON body → ("pixels", array) or ("image", bytes)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise RequestError("the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RequestError('expected a JSON object: {"pixels": [784 numbers]} or '
                           '{"image": "data:image/png;base64,…"}')
    if ("pixels" in doc) == ("image" in doc):
        raise RequestError('give exactly one of "pixels" (784 numbers) or "image" (a data URL)')
    if "pixels" in doc:
        return "pixels", pixels_input(doc["pixels"])
    return "image", data_url_bytes(doc["image"])


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("the Content-Length header is not a number", 400) from None
        if size > limit:
            raise RequestError(too_large(size, limit), 413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(too_large(total, limit), 413)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> str:
    return (f"the request is {size / 2**20:.1f} MB or more; the limit is "
            f"{limit / 2**20:.0f} MB")


async def multipart_file(request: Request, body: bytes) -> tuple[bytes, str]:
    """The first file in a multipart/form-data body and its (cleaned) name."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise RequestError(f"the multipart body is malformed ({e.message})") from None
    except (ValueError, KeyError, UnicodeError):
        raise RequestError("the multipart body is malformed") from None
    try:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                return await value.read(), clean_name(value.filename)
    finally:
        await form.close()
    raise RequestError('the multipart form has no file; send the image as a file field '
                       '(e.g. -F "file=@digit.png")')


def image_status(error: ImageError) -> int:
    """415 for "this is not an image", 422 for an image we cannot use."""
    text = str(error)
    return 415 if ("is not an image" in text or "not an image" in text) else 422


# ---------------------------------------------------------------- the app


def create_app(run_path: str | Path, *, limits: Limits | None = None,
               batch: bool = False) -> FastAPI:
    """The FastAPI app serving ``run_path``: the API, the page and its assets."""
    from mlplab import preprocess

    limits = limits or Limits()
    predictor = Predictor(run_path, batch=batch)
    about = predictor.describe()
    preprocess.preprocess_bytes(blank_png())  # warm the decoder's imports and caches

    app = FastAPI(title="mlplab", version=__version__,
                  description=f"Predict handwritten digits with the run **{about['run']}**. "
                              "The page at `/` lets you draw one.")
    app.state.predictor = predictor
    app.state.limits = limits
    app.add_middleware(TimingMiddleware)

    @app.exception_handler(MlplabError)
    async def user_error(request: Request, exc: MlplabError) -> Response:
        status = exc.status if isinstance(exc, RequestError) else \
            image_status(exc) if isinstance(exc, ImageError) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/health", summary="Liveness: the model is loaded and answering")
    async def health() -> dict:
        return {"status": "ok", "run": about["run"], "model_calls": predictor.calls}

    @app.get("/api/model", summary="The run being served: config, parameters, accuracy, data")
    async def model_info() -> dict:
        return about

    @app.post(
        "/api/predict",
        summary="Predict the digit in an image or in 784 MNIST-style pixels",
        description=(
            "Send one of: a multipart/form-data upload with a file field; the raw image "
            "bytes (Content-Type image/* or application/octet-stream); or JSON, either "
            '`{"pixels": [784 numbers]}` (MNIST style: white ink on black, 0–1 or 0–255; '
            'used as they are) or `{"image": "data:image/png;base64,…"}`. Images go '
            "through mlplab's MNIST preprocessing. Add `?preprocessed=1` to get the 784 "
            "values the model saw. Errors: 413 too large, 415 not an image, 422 anything "
            "else that cannot be used."),
        responses={413: {"description": "the body is over the size limit"},
                   415: {"description": "not an image, or an unsupported content type"},
                   422: {"description": "malformed JSON, wrong pixel count, no digit, …"}})
    async def predict(request: Request, preprocessed: bool = False) -> Response:
        start = time.perf_counter()
        body = await read_body(request, limits.max_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        name = "upload"
        if kind == "application/json" or kind.endswith("+json"):
            what, value = json_input(body)
            if what == "pixels":
                x = value
            else:
                x = await to_input(value, "image", limits)
        elif kind == "multipart/form-data":
            data, name = await multipart_file(request, body)
            x = await to_input(data, name, limits)
        elif kind in ("", "application/octet-stream") or kind.startswith("image/"):
            x = await to_input(body, "image", limits)
        else:
            raise RequestError(f"unsupported Content-Type {kind[:60]!r}: send an image, "
                               "multipart/form-data or JSON", 415)
        probs = await predictor.predict_one(x)
        answer: dict[str, Any] = {"digit": int(np.argmax(probs)),
                                  "probabilities": np.round(probs.astype(np.float64),
                                                            6).tolist()}
        if preprocessed:
            answer["preprocessed"] = np.round(x.astype(np.float64), 3).tolist()
        answer["ms"] = round((time.perf_counter() - start) * 1e3, 3)
        return Response(json.dumps(answer, separators=(",", ":")),
                        media_type="application/json")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def to_input(data: bytes, name: str, limits: Limits) -> np.ndarray:
        """Image bytes → the model's (784,) input; big images are decoded off the loop."""
        if not data:
            raise ImageError(f"{name}: the body is empty; send an image")
        if len(data) <= limits.inline_bytes:
            return preprocess_image(data, name, limits)
        return await run_in_threadpool(preprocess_image, data, name, limits)

    return app


def preprocess_image(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """The one preprocessing path of :mod:`mlplab.preprocess`, with the server's limits."""
    from mlplab import preprocess

    image = preprocess.decode_image(data, name=name, max_pixels=limits.max_pixels)
    try:
        x = preprocess.to_mnist(image)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    return np.asarray(x, np.float32).reshape(784)


def blank_png() -> bytes:
    """A small PNG with one stroke (warms up decoding at start-up)."""
    import io

    from PIL import Image

    a = np.zeros((28, 28), np.uint8)
    a[6:22, 13:15] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


class TimingMiddleware:
    """Adds the mlplab version and the server time in ms to every response (pure ASGI)."""

    def __init__(self, app: Any):
        self.app = app
        self.version = __version__.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - start) * 1e3
                headers = list(message.get("headers", ()))
                headers.append((b"x-mlplab-version", self.version))
                headers.append((b"x-process-time", f"{ms:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


# ---------------------------------------------------------------- running it


def serve(run_path: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits | None = None, batch: bool = False, access_log: bool = True,
          echo: Any = print) -> None:
    """Load the run and serve it with uvicorn until interrupted."""
    import uvicorn

    from mlplab.runs import open_run

    open_run(run_path)  # a wrong path is reported before anything else
    check_bind(host, port)
    app = create_app(run_path, limits=limits, batch=batch)
    about = app.state.predictor.describe()
    shown = f"[{host}]" if ":" in host else host
    accuracy = about["test_accuracy"]
    echo(f"Serving {about['run']} ({about['parameters']:,} parameters"
         + (f", test accuracy {accuracy:.2%}" if isinstance(accuracy, float)
            and math.isfinite(accuracy) else "")
         + f") at http://{shown}:{port}/  (API docs: /docs)")
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log,
                            log_level="info" if access_log else "warning",
                            server_header=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run()


def check_bind(host: str, port: int) -> None:
    """Fail with one line, before loading anything, if ``host:port`` cannot be bound."""
    import socket

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port (0–65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"--host {host!r} is not an address of this machine") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
