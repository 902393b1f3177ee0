"""`mlplab bench` runs and reports ratios (a smoke test: no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlplab.benchmarks import Measurement, ratios, training_checks
from mlplab.cli import main


def test_bench_smoke_json(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--only", "mlplab,numpy", "--data", "mnist-sample", "--epochs", "2",
              "--json"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    report = json.loads(out)
    rows = {r["contender"]: r for r in report["results"]}
    assert set(rows) == {"mlplab", "numpy"}
    for r in rows.values():
        assert not r["error"] and len(r["epoch_seconds"]) == 2
        assert 0.5 < r["val_accuracy"] <= 1 and r["peak_rss_mb"] > 50
    assert report["ratios_to_mlplab"]["mlplab"]["steady"] == pytest.approx(1.0)
    assert report["ratios_to_mlplab"]["numpy"]["steady"] > 0


def test_ratios_and_checks_arithmetic():
    ours = Measurement("mlplab", "ours", [1.0, 0.2, 0.2], 0.90, 500.0)
    keras = Measurement("keras", "k", [2.0, 0.5, 0.5], 0.903, 1000.0)
    tf = Measurement("keras-tensorflow", "t", [2.0, 1.0, 2.0], 0.90, 1200.0)
    r = ratios([ours, keras, tf])
    assert r["keras"]["steady"] == pytest.approx(2.5)
    assert r["keras-tensorflow"]["steady"] == pytest.approx(7.5)  # median of 1.0, 2.0
    checks = {c["check"]: c for c in training_checks([ours, keras, tf])}
    assert checks["steady epoch vs Keras fit (current backend)"]["ok"]  # 0.4 <= 0.6
    assert checks["steady epoch vs Keras fit (tensorflow)"]["value"] == pytest.approx(0.2 / 1.5)
    assert checks["val accuracy vs Keras fit, points"]["ok"]  # 0.3 points


def test_bench_rejects_unknown_contender(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--only", "pytorch"])
    assert e.value.code == 2 and "unknown contender 'pytorch'" in capsys.readouterr().err


def test_bench_preprocess_times_each_kind_and_its_decoding_on_the_same_files(monkeypatch):
    from mlplab import preprocess
    from mlplab.benchmarks import bench_preprocess
    from mlplab.data import load_dataset
    from mlplab.userstyle import STYLES

    calls = []
    original = preprocess.preprocess_bytes
    monkeypatch.setattr(preprocess, "preprocess_bytes",
                        lambda data: calls.append(len(data)) or original(data))
    styles = {k: STYLES[k] for k in ("web_canvas", "lined_paper", "tiny_crop")}
    total, decoding = bench_preprocess(load_dataset("mnist-sample"), n=4, repeats=2,
                                       per_style=2, styles=styles)
    # Each kind: one warm-up call, then the best of two passes over its files (4 each, and
    # at least 10 and 5 of the two large photos; 2 in each of the 3 user styles).
    assert len(calls) == 6 + 2 * (3 * 4 + 10 + 5 + 3 * 2)
    assert list(total) == list(decoding)
    *kinds, average, user = list(total)
    assert len(kinds) == 5 and any("12 MP" in k for k in kinds)
    assert average == "average over these kinds of image"
    assert user == "user-style images (3 styles × 2 t10k digits, as in the accuracy test)"
    for out in (total, decoding):
        assert all(np.isfinite(v) and v > 0 for v in out.values())
        assert out[average] == pytest.approx(sum(out[k] for k in kinds) / len(kinds))


PREDICT_RESULT = {
    "one_image_ms": {"mlplab": 0.05, "model.predict": 0.8},
    "10000_images_ms": {"mlplab": 40.0, "model.predict": 250.0},
    "same_predictions": True,
    "preprocess_ms": {"300x300 PNG": 9.0, "user-style images": 4.0},
    "preprocess_decode_ms": {"300x300 PNG": 1.0, "user-style images": 0.5},
    "host": {"fit_epoch_s": 1.32, "reference_fit_epoch_s": 0.33, "speed": 0.25},
}


def test_predict_checks_read_each_time_here_and_at_the_reference_speed():
    from mlplab.benchmarks import predict_checks

    speedup, png, user = predict_checks(PREDICT_RESULT)
    assert speedup["value"] == pytest.approx(16.0) and not speedup["ok"]  # under 20×
    assert png["value"] == 9.0 and not png["ok"]
    assert png["at_reference_ms"] == pytest.approx(2.25) and png["ok_at_reference"]
    assert user["ok"] and user["decoding_ms"] == 0.5
    slow = {**PREDICT_RESULT, "host": {**PREDICT_RESULT["host"], "speed": 2.0}}
    assert not predict_checks(slow)[2]["ok_at_reference"]  # 4 ms on a host twice as fast: 8
    assert "at_reference_ms" not in predict_checks({**PREDICT_RESULT, "host": None})[1]


def test_bench_predict_prints_the_host_speed_and_both_verdicts(monkeypatch, capsys):
    from mlplab import benchmarks

    monkeypatch.setattr(benchmarks, "bench_predict", lambda run=None: PREDICT_RESULT)
    with pytest.raises(SystemExit) as e:
        main(["bench", "predict"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "this host ran at 0.25× its speed" in out
    assert "one-image speed-up: 16.0× (target >= 20: FAIL)" in out
    assert ("preprocess 300x300 PNG: 9.00 ms/image, decoding 1.00 ms of it (target < 5 ms: "
            "FAIL here; 2.25 ms at the reference speed: PASS)") in out
    with pytest.raises(SystemExit):
        main(["bench", "predict", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["host"]["speed"] == 0.25
    assert [c["ok"] for c in report["checks"]] == [False, False, True]


def test_host_speed_is_the_reference_epoch_over_this_hosts():
    from mlplab.benchmarks import REFERENCE_FIT_EPOCH_S, host_speed

    for isolated in (True, False):
        h = host_speed(epochs=2, n=1200, isolated=isolated)
        assert h["reference_fit_epoch_s"] == REFERENCE_FIT_EPOCH_S
        assert h["fit_epoch_s"] > 0
        assert h["speed"] == pytest.approx(REFERENCE_FIT_EPOCH_S / h["fit_epoch_s"])


def test_host_speed_runs_in_a_fresh_process_and_reports_its_failure(monkeypatch, capsys):
    """The reference epoch is timed in a process of its own (JAX's thread pool is set when
    its backend first starts, which other work in this process may have done): a failing
    one gives None and says why, and bench predict still prints its other lines."""
    import subprocess

    from mlplab import benchmarks

    seen = []

    def run(args, **kwargs):
        seen.append(args)
        return subprocess.CompletedProcess(args, 1, "", "Traceback…\nMemoryError: no room\n")

    monkeypatch.setattr(benchmarks.subprocess, "run", run)
    assert benchmarks.host_speed(epochs=2, n=600) is None
    assert seen[0][1:4] == ["-m", "mlplab.benchmarks", "host-speed"]
    assert "host speed not measured: MemoryError: no room" in capsys.readouterr().err


def test_host_speed_does_not_import_tensorflow(monkeypatch):
    """keras.utils.set_random_seed imports TensorFlow whenever it is installed (seconds, and
    its C++ log lines on stderr); the JAX timing run must not even look for it."""
    import sys

    from mlplab.benchmarks import host_speed

    looked: list[str] = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "tensorflow":
                looked.append(name)
            return None

    monkeypatch.setattr(sys, "meta_path", [Watch(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    import keras.src.utils.module_utils as module_utils

    monkeypatch.setattr(module_utils.tensorflow, "module", None)  # not yet imported
    host_speed(epochs=1, n=600, isolated=False)
    assert looked == []
