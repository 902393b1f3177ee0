"""The HTTP API in-process (TestClient): every endpoint, every kind of bad input.

TestClient re-raises any exception the app does not turn into a response, so a request
that would be a 500 on a real server fails these tests loudly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import warnings
import zlib

import httpx
import numpy as np
import pytest

from mlplab import __version__
from mlplab.errors import RunError
from mlplab.serving import STATIC, Limits, create_app
from servehelp import png_bytes, served_run

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx works the same
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

LIMIT = 256 * 1024  # a small body limit, so that "too large" is cheap to send


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return served_run(tmp_path_factory.mktemp("serve-runs"))


@pytest.fixture(scope="module")
def app(run_path):
    return create_app(run_path, limits=Limits(max_bytes=LIMIT, max_pixels=4_000_000))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def digits(sample):
    """The first 40 t10k digits as (png bytes, label, 28×28 uint8)."""
    return [(png_bytes(x), int(y), x) for x, y in zip(sample.x_test[:40], sample.y_test[:40],
                                                      strict=True)]


def reference(run_path, x: np.ndarray) -> np.ndarray:
    from mlplab.engine import predict_fn
    from mlplab.models import load_model
    from mlplab.runs import open_run

    return predict_fn(load_model(open_run(run_path).model_path))(x.reshape(len(x), 784))


def good_request(client, digits) -> None:
    png, label, _ = digits[0]
    r = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["digit"] == label


# ---------------------------------------------------------------- endpoints


def test_health_model_docs_and_headers(client, run_path):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["x-mlplab-version"] == __version__
    assert float(r.headers["x-process-time"]) >= 0

    about = client.get("/api/model").json()
    assert about["run"] == run_path.name == "served"
    assert about["config"]["layers"] == [256] and about["config"]["optimizer"] == "adam"
    assert about["parameters"] == 784 * 256 + 256 + 256 * 10 + 10
    assert 0.85 < about["test_accuracy"] <= 1
    assert about["data"]["name"] == "mnist-sample" and about["mlplab"] == __version__

    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/health"} <= set(schema["paths"])


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for ref in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        assert client.get("/" + ref).status_code == 200
    for f in ("index.html", "app.js", "app.css"):  # works offline: nothing from elsewhere
        text = (STATIC / f).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), f


def test_predict_raw_png_matches_the_library(client, run_path, digits):
    from mlplab import preprocess

    xs, probs = [], []
    for png, _, _ in digits:
        r = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 200
        answer = r.json()
        assert set(answer) == {"digit", "probabilities", "ms"}
        assert answer["digit"] == int(np.argmax(answer["probabilities"]))
        assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert answer["ms"] >= 0
        xs.append(preprocess.preprocess_bytes(png))
        probs.append(answer["probabilities"])
    np.testing.assert_allclose(probs, reference(run_path, np.stack(xs)), atol=1e-5)
    right = np.mean([np.argmax(p) == label for p, (_, label, _) in zip(probs, digits,
                                                                        strict=True)])
    assert right >= 0.85


def test_every_input_form_gives_the_same_answer(client, digits):
    png, label, x = digits[3]
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    answers = [
        client.post("/api/predict", content=png),  # no Content-Type at all
        client.post("/api/predict", content=png,
                    headers={"Content-Type": "application/octet-stream"}),
        client.post("/api/predict", files={"file": ("digit.png", png, "image/png")}),
        client.post("/api/predict", json={"image": url}),
        client.post("/api/predict", json={"image": base64.b64encode(png).decode()}),
        client.post("/api/predict", json={"pixels": x.ravel().tolist()}),  # 0–255
        client.post("/api/predict", json={"pixels": (x / 255).ravel().tolist()}),  # 0–1
        client.post("/api/predict", json={"pixels": x.tolist()}),  # 28×28 rows
    ]
    for r in answers:
        assert r.status_code == 200, r.text
    first = answers[0].json()
    assert first["digit"] == label
    for r in answers[1:]:
        np.testing.assert_allclose(r.json()["probabilities"], first["probabilities"],
                                   atol=1e-5)


def test_preprocessed_on_request(client, digits):
    png, _, x = digits[5]
    answer = client.post("/api/predict?preprocessed=1", content=png).json()
    seen = np.array(answer["preprocessed"])
    assert seen.shape == (784,) and 0 <= seen.min() and seen.max() <= 1
    np.testing.assert_allclose(seen, x.ravel() / 255, atol=1e-3)  # MNIST passes through

    # A photo-like image: dark ink on light paper, big, JPEG → preprocessed to MNIST style.
    big = np.kron(255 - x, np.ones((8, 8), np.uint8))
    answer = client.post("/api/predict?preprocessed=true", content=png_bytes(big, "JPEG"),
                         headers={"Content-Type": "image/jpeg"}).json()
    seen = np.array(answer["preprocessed"]).reshape(28, 28)
    assert seen[0].max() < 0.05 and seen.max() > 0.9  # white ink on black, centred


def test_large_images_decode_off_the_loop(run_path, digits):
    """Above the inline limit the image is decoded in a worker thread: same answer."""
    app = create_app(run_path, limits=Limits(inline_bytes=10))
    with TestClient(app) as c:
        for png, label, _ in digits[:3]:
            r = c.post("/api/predict", content=png)
            assert r.status_code == 200 and r.json()["digit"] == label


def test_micro_batching_groups_concurrent_requests(run_path, digits):
    app = create_app(run_path, batch=True)
    predictor = app.state.predictor

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/api/predict", content=png)
                                          for png, _, _ in digits))

    before = predictor.calls
    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert predictor.calls - before < len(digits)  # some requests shared a model call
    with TestClient(create_app(run_path)) as c:  # the same answers without batching
        for r, (png, _, _) in zip(responses, digits, strict=True):
            np.testing.assert_allclose(r.json()["probabilities"],
                                       c.post("/api/predict", content=png)
                                       .json()["probabilities"], atol=1e-5)


def test_bucketed_batches_pad_and_chunk(app):
    predictor = app.state.predictor
    x = np.random.default_rng(0).random((70, 784), dtype=np.float32)
    whole = predictor(x)  # 64 + 6 (padded to 8)
    assert whole.shape == (70, 10)
    np.testing.assert_allclose(whole[:3], predictor(x[:3]), atol=1e-5)
    np.testing.assert_allclose(whole[65], predictor(x[65:66])[0], atol=1e-5)


def test_cli_errors_are_one_line(tmp_path, run_path, capsys):
    from mlplab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path / "nowhere")])
    assert e.value.code == 2 and "is not a directory" in capsys.readouterr().err
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SystemExit) as e:
            main(["serve", str(run_path), "--port", str(busy.getsockname()[1])])
    assert e.value.code == 2 and "cannot listen on 127.0.0.1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", str(run_path), "--port", "70000"])
    assert e.value.code == 2 and "not a TCP port" in capsys.readouterr().err


def test_bad_run_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="is not a directory"):
        create_app(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunError):
        create_app(tmp_path)


# ---------------------------------------------------------------- hostile requests


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bomb_png(side: int = 50_000) -> bytes:
    """A valid-looking PNG header of side × side pixels (2.5 gigapixels) in a few bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def multipart(body_parts: list[bytes], boundary: str = "XyZ") -> tuple[bytes, dict]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in body_parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def hostile_requests(digits) -> list[tuple[str, dict, tuple[int, ...], str]]:
    """(name, request kwargs, allowed statuses, a word the message must contain)."""
    png = digits[0][0]
    pixels = digits[0][2].ravel().tolist()
    blank = png_bytes(np.zeros((28, 28)))
    evil_name, evil_headers = multipart([
        b'Content-Disposition: form-data; name="file"; filename="../../etc/passwd"\r\n'
        b"Content-Type: image/png\r\n\r\nroot:x:0:0:root:/root:/bin/bash"])
    no_file, no_file_headers = multipart([b'Content-Disposition: form-data; name="a"\r\n\r\n1'])

    def chunks():
        for _ in range(LIMIT // 4096 + 10):
            yield b"\0" * 4096

    return [
        ("oversized body", {"content": b"\0" * (LIMIT + 1)}, (413,), "limit"),
        ("oversized, streamed without a length", {"content": chunks()}, (413,), "limit"),
        ("oversized JSON", {"content": b'{"pixels": [' + b"0," * LIMIT + b"0]}",
                            "headers": {"Content-Type": "application/json"}}, (413,), "limit"),
        ("empty body", {"content": b""}, (422,), "empty"),
        ("truncated PNG", {"content": png[: len(png) // 2]}, (422,), "truncated"),
        ("decompression bomb", {"content": bomb_png()}, (413, 422), "megapixel"),
        ("random bytes", {"content": bytes(range(256)) * 8,
                          "headers": {"Content-Type": "application/octet-stream"}},
         (415, 422), "not an image"),
        ("HTML as image/png", {"content": b"<!doctype html><script>alert(1)</script>",
                               "headers": {"Content-Type": "image/png"}}, (415, 422), "HTML"),
        ("text/plain", {"content": b"7", "headers": {"Content-Type": "text/plain"}},
         (415,), "Content-Type"),
        ("form-urlencoded", {"data": {"pixels": "1"}}, (415,), "Content-Type"),
        ("blank image", {"content": blank}, (422,), "no digit"),
        ("malformed JSON", {"content": b'{"pixels": [1, 2', "headers":
                            {"Content-Type": "application/json"}}, (422,), "JSON"),
        ("JSON list", {"json": [1, 2, 3]}, (422,), "object"),
        ("JSON without a key", {"json": {"pixel": pixels}}, (422,), "exactly one"),
        ("JSON with both keys", {"json": {"pixels": pixels, "image": "x"}}, (422,),
         "exactly one"),
        ("wrong pixel count", {"json": {"pixels": pixels[:-1]}}, (422,), "783"),
        ("pixels as strings", {"json": {"pixels": ["1"] * 784}}, (422,), "numbers"),
        ("pixels with booleans", {"json": {"pixels": [True] * 784}}, (422,), "numbers"),
        ("pixels NaN", {"content": ("{\"pixels\": [NaN" + ", 0" * 783 + "]}").encode(),
                        "headers": {"Content-Type": "application/json"}}, (422,), "finite"),
        ("pixels out of range", {"json": {"pixels": [300] * 784}}, (422,), "0–255"),
        ("pixels negative", {"json": {"pixels": [-1] * 784}}, (422,), "0–255"),
        ("pixels not a list", {"json": {"pixels": "0" * 784}}, (422,), "list"),
        ("deeply nested JSON", {"content": b"[" * 100_000 + b"]" * 100_000,
                                "headers": {"Content-Type": "application/json"}}, (422,),
         "JSON"),
        ("data URL not base64", {"json": {"image": "data:image/png;base64,@@@"}}, (422,),
         "base64"),
        ("data URL without base64", {"json": {"image": "data:image/png,abc"}}, (422,),
         "base64"),
        ("data URL of text", {"json": {"image": "data:image/png;base64,"
                                       + base64.b64encode(b"hello world").decode()}},
         (415, 422), "not an image"),
        ("image not a string", {"json": {"image": 12}}, (422,), "data URL"),
        ("path tricks in a filename", {"content": evil_name, "headers": evil_headers},
         (415, 422), "passwd"),
        ("multipart without a file", {"content": no_file, "headers": no_file_headers},
         (422,), "no file"),
        ("multipart without a boundary", {"content": b"--x\r\n\r\n", "headers":
                                          {"Content-Type": "multipart/form-data"}}, (422,),
         "multipart"),
    ]


def test_hostile_requests_get_a_4xx_and_the_server_keeps_answering(client, digits):
    cases = hostile_requests(digits)
    assert len(cases) >= 20
    for name, kwargs, statuses, word in cases:
        r = client.post("/api/predict", **kwargs)
        assert r.status_code in statuses, (name, r.status_code, r.text[:300])
        detail = r.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300, name
        assert word.lower() in detail.lower(), (name, detail)
        assert "Traceback" not in r.text
        good_request(client, digits)  # and the next good request works


def test_filenames_never_leak_paths(client, digits):
    png = digits[0][0]
    r = client.post("/api/predict",
                    files={"file": ("../../../../tmp/evil\x00.png", b"GIF89a-broken", "image/gif")})
    assert r.status_code in (415, 422)
    assert "../" not in r.json()["detail"] and "\x00" not in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("../../x.png", png, "image/png")})
    assert r.status_code == 200


def test_other_methods_and_paths(client):
    assert client.get("/api/predict").status_code == 405
    assert client.get("/nope").status_code == 404
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/%2e%2e/serving.py").status_code == 404
    assert client.get("/static/nope.js").status_code == 404


def test_bomb_is_refused_before_decoding(client, digits):
    r = client.post("/api/predict", content=bomb_png(), headers={"Content-Type": "image/png"})
    assert r.status_code in (413, 422) and "2,500,000,000 pixels" in r.json()["detail"]
    good_request(client, digits)


def test_json_answer_is_plain_json(client, digits):
    r = client.post("/api/predict", content=digits[1][0])
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.text)["digit"] == digits[1][1]
