"""A real `mlplab serve` process on loopback: hostile bytes on the wire, then bounded load.

Every request goes to 127.0.0.1 only, and every loop is bounded in count and in time.
No timing is asserted (machines differ); errors, answers and memory are.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from mlplab.benchmarks import ServerProcess, digit_pngs, http_load, post_image
from servehelp import served_run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = served_run(tmp_path_factory.mktemp("load-runs"))
    with ServerProcess(run) as s:
        yield s


def exchange(port: int, data: bytes, *, close_early: bool = False) -> bytes:
    """Send raw bytes; return what the server answers before closing (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if close_early:
            return b""
        # Every request here says Connection: close (or is refused): the server closes.
        out = b""
        while len(out) < 1_000_000:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def good(server, png: bytes, label: int) -> None:
    answer = exchange(server.port, post_image(server.port, png).replace(
        b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
    assert status_of(answer) == 200, answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["digit"] == label


def test_hostile_bytes_on_the_wire(server):
    png, label = digit_pngs(1)[0]
    port = server.port
    head = f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    cases = [
        ("garbage request line", b"\x00\xff GET nonsense\r\n\r\n", (400,)),
        ("bad Content-Length", (head + "Content-Length: abc\r\n\r\n").encode(), (400, 422)),
        ("huge Content-Length", (head + "Content-Type: image/png\r\nContent-Length: "
                                 "99999999999\r\n\r\n").encode(), (413,)),
        ("huge header", (head + "X-Junk: " + "a" * 200_000 + "\r\n\r\n").encode(),
         (400, 413, 431, 0)),
        ("path traversal", b"GET /static/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n", (404, 400)),
        ("encoded traversal", b"GET /static/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n", (404, 400)),
    ]
    for name, data, statuses in cases:
        answer = exchange(port, data)
        assert status_of(answer) in statuses, (name, answer[:300])
        assert b"root:" not in answer and b"Traceback" not in answer, name
        good(server, png, label)
    # A body cut short (the client goes away mid-upload), and a connection that says nothing.
    cut = (head + f"Content-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n").encode()
    exchange(port, cut + png[:20], close_early=True)
    exchange(port, b"", close_early=True)
    good(server, png, label)


def test_bounded_load_no_errors_right_answers_stable_memory(server):
    digits = digit_pngs(200)
    requests = [(post_image(server.port, png), label) for png, label in digits]
    asyncio.run(http_load(server.port, requests, clients=8, seconds=1, max_requests=300))
    rss_start = server.rss_mb()
    r = asyncio.run(http_load(server.port, requests, clients=16, seconds=5, max_requests=3000))
    rss_end = server.rss_mb()
    assert r["errors"] == [], r["errors"][:3]
    assert len(r["latencies"]) >= 50  # bounded by count and time, whichever comes first
    assert len(r["server_ms"]) == len(r["latencies"])
    assert r["right"] / len(r["latencies"]) > 0.85  # the answers are the model's, not noise
    assert rss_end < rss_start * 1.25
    good(server, *digits[0])  # still answering


def test_bench_serve_command(server, capsys):
    from mlplab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bench", "serve", "--run", server.run, "--clients", "4", "--seconds", "1",
              "--warmup", "0.5", "--json"])
    assert e.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0 and report["requests"] > 0
    assert report["latency_ms"]["p50"] > 0 and report["server_ms"]["p99"] >= \
        report["server_ms"]["p50"] > 0
    assert report["rss_end_mb"] > 50 and report["accuracy"] > 0.85
    assert {c["check"] for c in report["checks"]} == {
        "errors", "requests/s", "server time p50 (ms)", "server RSS growth (%)"}
