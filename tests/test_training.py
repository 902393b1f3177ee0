"""Training: engine parity with Keras fit, determinism, early stopping, exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlplab.config import TrainConfig
from mlplab.runs import create_run, open_run, read_history, train_run
from mlplab.training import epoch_permutation, train


def strip_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("extra", [{}, {"dropout": 0.3, "optimizer": "adam", "lr": 0.003},
                                   {"batch_norm": True, "optimizer": "sgd", "momentum": 0.9,
                                    "nesterov": True, "label_smoothing": 0.1}])
def test_engine_matches_keras_fit(tiny, extra):
    """Same initial weights and batch order → same per-epoch metrics (last batch partial)."""
    config = TrainConfig(layers=(32, 16), epochs=3, batch_size=64, **extra)  # 300 % 64 != 0
    ours = train(config, tiny).history
    ref = train(config.with_overrides(engine="keras"), tiny).history
    for a, b in zip(ours, ref, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (key, a, b)
    assert ours[-1]["val_accuracy"] > 0.5  # it learned the synthetic task


def test_final_weights_match_keras_fit(tiny):
    config = TrainConfig(layers=(16,), epochs=2, batch_size=50)
    w1 = train(config, tiny).model.get_weights()
    w2 = train(config.with_overrides(engine="keras"), tiny).model.get_weights()
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_permutation_is_a_pure_function():
    a = epoch_permutation(42, 3, 1000)
    assert np.array_equal(a, epoch_permutation(42, 3, 1000))
    assert not np.array_equal(a, epoch_permutation(42, 4, 1000))
    assert sorted(a.tolist()) == list(range(1000))


def test_same_seed_same_history_different_seed_differs(tiny):
    config = TrainConfig(layers=(16,), epochs=2, dropout=0.2, shift=1.0, rotation=5.0)
    h1 = strip_seconds(train(config, tiny).history)
    h2 = strip_seconds(train(config, tiny).history)
    h3 = strip_seconds(train(config.with_overrides(seed=1), tiny).history)
    assert h1 == h2 and h1 != h3


def test_early_stopping_and_restore_best(tiny):
    config = TrainConfig(layers=(64,), optimizer="adam", lr=0.5, epochs=30, patience=2,
                         restore_best=True)
    result = train(config, tiny)
    assert result.stopped_early and len(result.history) < 30
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]


def test_held_out_validation_fraction(tiny):
    result = train(TrainConfig(layers=(8,), epochs=1, validation="0.2"), tiny)
    assert result.history[0]["val_accuracy"] >= 0  # trained on 240, validated on 60
    from mlplab.training import split_data

    split = split_data(tiny, TrainConfig(validation="0.2"))
    assert len(split.x_train) == 240 and len(split.x_val) == 60


def test_test_half_validation_keeps_the_other_half_unseen(sample):
    from mlplab.training import split_data

    split = split_data(sample, TrainConfig(validation="test-half", seed=1))
    assert len(split.x_train) == 5000 and len(split.x_val) == 5000  # all training digits train
    val, unseen = sample.test_halves()
    assert len(val) == len(unseen) == 5000 and not set(val) & set(unseen)
    assert np.array_equal(split.x_val, sample.x_test[val].reshape(5000, -1))
    # the same halves for every seed, and mixed from both ends of t10k (its halves differ)
    assert np.array_equal(split_data(sample, TrainConfig(validation="test-half", seed=2)).y_val,
                          split.y_val)
    assert 2000 < (val < 5000).sum() < 3000
    held = sample.unseen_test_half()
    assert np.array_equal(held.y_test, sample.y_test[unseen]) and "unseen half" in held.name


def test_run_directory_is_complete(tmp_path, tiny):
    config = TrainConfig(layers=(8,), epochs=2, optimizer="adamw", schedule="cosine",
                         warmup_epochs=1)
    run = create_run(tmp_path, "r", config)
    train_run(run, config, tiny)
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "environment.json", "history.csv", "model.keras", "curves.png",
            "metrics.json", "status", "checkpoint.npz"} <= names
    assert not [n for n in names if n.endswith(".tmp") or ".tmp." in n]
    assert run.status == "complete"
    header = (run.path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
    hist = read_history(run.path / "history.csv")
    assert hist[0]["lr"] < hist[1]["lr"]  # warm-up
    env = run.environment()
    assert env["backend"] == "jax" and env["data"]["name"] == "tiny"
    assert run.metrics()["epochs_done"] == 2
    from mlplab.models import load_model

    model = load_model(run.model_path)
    assert model.count_params() == 8 * 784 + 8 + 90


TRAIN_ARGS = ["--data", "mnist-sample", "--layers", "1024,1024", "--batch-size", "16",
              "--epochs", "6", "--seed", "3", "--dropout", "0.1", "--optimizer", "adam",
              "--lr", "0.0005", "--schedule", "cosine", "--quiet"]


class Proc:
    """A background ``python -m mlplab`` whose stderr goes to a file."""

    def __init__(self, *args: str, cwd: Path):
        self.log = cwd / f"stderr-{time.monotonic_ns()}.txt"
        with open(self.log, "wb") as err:
            self.popen = subprocess.Popen([sys.executable, "-m", "mlplab", *args], cwd=cwd,
                                          env=dict(os.environ, MLPLAB_OFFLINE="1"),
                                          stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self) -> int:
        return self.popen.wait(timeout=900)

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    @property
    def stderr(self) -> str:
        return self.log.read_text()


def mlplab(*args: str, cwd: Path) -> Proc:
    return Proc(*args, cwd=cwd)


def test_resume_after_kill_9_is_exact(tmp_path):
    """kill -9 during epoch 3 of 6, resume: history and weights equal an uninterrupted run."""
    full = mlplab("train", *TRAIN_ARGS, "--name", "full", cwd=tmp_path)
    killed = mlplab("train", *TRAIN_ARGS, "--name", "killed", cwd=tmp_path)
    hist = tmp_path / "runs" / "killed" / "history.csv"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and killed.poll() is None:
        if hist.exists() and len(hist.read_text().splitlines()) == 3:  # header + 2 epochs
            break
        time.sleep(0.02)
    assert killed.poll() is None, killed.stderr
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert full.wait() == 0, full.stderr
    run = open_run(tmp_path / "runs" / "killed")
    assert run.status == "running" and 2 <= len(run.history()) < 6
    resumed = mlplab("train", "--resume", str(run.path), cwd=tmp_path)
    assert resumed.wait() == 0, resumed.stderr
    a = strip_seconds(read_history(tmp_path / "runs" / "full" / "history.csv"))
    b = strip_seconds(read_history(run.path / "history.csv"))
    assert len(a) == 6 and a == b
    assert run.status == "complete"
    from mlplab.models import load_model

    wa = load_model(tmp_path / "runs" / "full" / "model.keras").get_weights()
    wb = load_model(run.model_path).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    proc = mlplab("train", *TRAIN_ARGS, "--name", "c", cwd=tmp_path)
    hist = tmp_path / "runs" / "c" / "history.csv"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not hist.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    code = proc.wait()
    err = proc.stderr
    assert code == 130, err
    assert "--resume" in err and "Traceback" not in err
    run = open_run(tmp_path / "runs" / "c")
    assert run.status == "interrupted"
    assert len(run.history()) >= 1 and run.model_path.exists()


def test_compiled_epochs_are_shared_across_hyperparameters(tiny):
    """One compile per architecture: runs differing only in lr, dropout, weight decay and seed
    reuse the compiled epoch, and train exactly as with a compile of their own."""
    from mlplab import engine
    from mlplab.training import make_engine, prepare_model, split_data

    base = TrainConfig(layers=(32,), epochs=2, batch_size=64, optimizer="adam", lr=0.003,
                       dropout=0.1, weight_decay=1e-4)
    other = base.with_overrides(lr=0.02, dropout=0.45, weight_decay=3e-3, seed=7)

    def engine_for(config):
        split = split_data(tiny, config)
        model = prepare_model(config, split)
        model.optimizer.build(model.trainable_variables)
        return make_engine(config, model, split, verbose=0)

    engine._COMPILED.clear()
    first, second = engine_for(base), engine_for(other)
    assert second.epoch_fn is first.epoch_fn
    shared = train(other, tiny).history
    engine._COMPILED.clear()
    own = train(other, tiny).history
    assert strip_seconds(shared) == strip_seconds(own)
    assert strip_seconds(shared) != strip_seconds(train(base, tiny).history)
    different = engine_for(other.with_overrides(layers=(16,)))
    assert different.epoch_fn is not first.epoch_fn


START_BACKEND = """
import json, os, sys
import mlplab
from mlplab.config import RECIPES, TrainConfig
from mlplab.backend import start_backend
from mlplab.models import LAB_MODELS
config = LAB_MODELS["model_1"] if sys.argv[1] == "model_1" else TrainConfig(**RECIPES["best"])
first = start_backend(config)
again = start_backend(LAB_MODELS["model_1"])  # the backend is running: no say any more
threads = sum(open(f"/proc/self/task/{t}/comm").read().startswith("tf_XLAEigen")
              for t in os.listdir("/proc/self/task"))
print(json.dumps({"first": first, "again": again, "threads": threads,
                  "env_left": "PJRT_NPROC" in os.environ}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
@pytest.mark.parametrize("model", ["model_1", "best"])
def test_start_backend_uses_one_xla_thread_for_small_models(model):
    """model_1's steps get one intra-op thread (steady epochs when the other core is busy);
    the best recipe's 1024-wide layers keep one per core. Each case in a fresh process: the
    choice is made when JAX starts its CPU backend."""
    import json

    from mlplab.backend import ONE_THREAD_MAX_MACS, step_macs
    from mlplab.config import RECIPES
    from mlplab.models import LAB_MODELS

    assert step_macs(LAB_MODELS["model_1"]) == 64 * (784 * 64 + 64 * 10)
    assert step_macs(TrainConfig(**RECIPES["best"])) > ONE_THREAD_MAX_MACS
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
    out = subprocess.run([sys.executable, "-c", START_BACKEND, model], env=env,
                         capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    assert got["first"] == (1 if model == "model_1" else cores)
    assert got["threads"] == got["first"]
    assert got["again"] is None and not got["env_left"]


def test_start_backend_leaves_other_backends_alone():
    """On another Keras backend there is no JAX backend to start: JAX is not imported."""
    probe = ("import sys, mlplab; from mlplab.config import TrainConfig; "
             "from mlplab.backend import start_backend; "
             "print(start_backend(TrainConfig()), 'jax' in sys.modules)")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["None", "False"]
