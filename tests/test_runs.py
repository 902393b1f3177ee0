"""Run directories: atomic writes under kill -9, listing, comparison with seed statistics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mlplab.cli import main
from mlplab.compare import compare_runs, verdicts
from mlplab.config import TrainConfig
from mlplab.runs import create_run, find_runs, summarize, train_run, write_bytes

WRITER = """
import sys
from mlplab.runs import write_bytes
i = 0
while True:
    i += 1
    write_bytes(sys.argv[1], bytes([i % 256]) * 4_000_000)
"""


def test_killed_writer_leaves_old_file_or_new_never_half(tmp_path):
    target = tmp_path / "big.bin"
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
        time.sleep(0.3 + 0.07 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        data = target.read_bytes()
        assert len(data) == 4_000_000 and len(set(data)) == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "big.bin"]
    assert all(name.startswith(".big.bin.") for name in leftovers)  # only temp files remain


def test_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "f.json"
    write_bytes(target, b"old")
    from mlplab.runs import atomic_path

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Two configs × three seeds on the real sample, small and quick."""
    from mlplab.data import load_dataset

    root = tmp_path_factory.mktemp("runs")
    ds = load_dataset("mnist-sample")
    paths = {"weak": [], "strong": []}
    for label, cfg in (("weak", TrainConfig(layers=(8,), lr=0.003, epochs=2, limit=1000)),
                       ("strong", TrainConfig(layers=(128,), optimizer="adam", lr=0.002,
                                              epochs=2, limit=1000))):
        for seed in (1, 2, 3):
            c = cfg.with_overrides(seed=seed, data="mnist-sample")
            run = create_run(root, f"{label}-s{seed}", c)
            train_run(run, c, ds)
            paths[label].append(run.path)
    return root, paths


def test_runs_lists_every_run(seed_runs, capsys):
    root, paths = seed_runs
    rows = [summarize(r) for r in find_runs(root)]
    assert len(rows) == 6 and {r["status"] for r in rows} == {"complete"}
    strong = [r for r in rows if "strong" in r["name"]][0]
    assert strong["layers"] == "128" and strong["optimizer"] == "adam"
    assert strong["epochs"] == "2/2" and strong["data"] == "mnist-sample"
    with pytest.raises(SystemExit) as e:
        main(["runs", "--runs-dir", str(root)])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.count("complete") == 6 and "best val_acc" in out


def test_compare_seed_groups_differ(seed_runs, tmp_path):
    _, paths = seed_runs
    result = compare_runs(paths["weak"] + paths["strong"], out=tmp_path / "cmp")
    assert {g["n"] for g in result.groups} == {3}
    (v,) = result.verdicts
    assert v["differ"] and v["p"] < 0.05 and v["difference"] < 0  # weak - strong
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(data["runs"]) == 6 and len(data["groups"]) == 2
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    assert "differ beyond seed noise" in (tmp_path / "cmp" / "comparison.md").read_text()


def test_verdict_no_difference_within_noise():
    groups = [{"config": "a", "n": 3, "mean_final_val_accuracy": 0.9,
               "std_final_val_accuracy": 0.01, "finals": [0.89, 0.9, 0.91]},
              {"config": "b", "n": 3, "mean_final_val_accuracy": 0.9033,
               "std_final_val_accuracy": 0.01, "finals": [0.895, 0.905, 0.91]}]
    (v,) = verdicts(groups)
    assert not v["differ"] and v["p"] > 0.05


def test_compare_cli_and_bad_run(seed_runs, tmp_path, capsys):
    _, paths = seed_runs
    with pytest.raises(SystemExit) as e:
        main(["compare", str(paths["weak"][0]), str(paths["strong"][0]), "--out",
              str(tmp_path / "c")])
    assert e.value.code == 0 and "final val_acc" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["compare", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not an mlplab run" in err and len(err.splitlines()) == 1


def test_train_seeds_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "mnist-sample", "--limit", "100", "--epochs", "1",
              "--layers", "8", "--seeds", "2", "--seed", "5", "--name", "g", "--quiet"])
    assert e.value.code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["g-s5", "g-s6"]
