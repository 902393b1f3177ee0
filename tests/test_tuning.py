"""Hyperparameter search: a tiny SQLite study end to end, errors, and two PostgreSQL workers."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlplab.cli import main

TINY = ["--data", "mnist-sample", "--limit", "300", "--epochs", "2"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_sqlite_study_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["tune", "--study", "s", "--trials", "3", *TINY], capsys)
    assert code == 0, err
    assert out.count("COMPLETE") + out.count("PRUNED") == 3 and "best: trial" in out
    trials = sorted(p.name for p in (tmp_path / "runs" / "tune-s").glob("trial-*"))
    assert trials == ["trial-0000", "trial-0001", "trial-0002"]
    # a second worker on a finished study does nothing more
    code, out, _ = run_cli(["tune", "--study", "s", "--trials", "3", *TINY], capsys)
    assert code == 0 and "trial    3" not in out
    code, out, err = run_cli(["tune", "best", "s"], capsys)
    assert code == 0, err
    best = tmp_path / "runs" / "s-best"
    assert (best / "model.keras").exists() and (best / "tune.json").exists()
    code, out, err = run_cli(["evaluate", str(best)], capsys)
    assert code == 0 and "accuracy" in out, err
    code, out, err = run_cli(["tune", "report", "s"], capsys)
    assert code == 0, err
    html = (tmp_path / "runs" / "tune-s" / "tune.html").read_text()
    assert html.count("data:image/png;base64,") == 3


@pytest.mark.parametrize("args,message", [
    (["--storage", "not-a-url"], "is not a database URL"),
    (["--storage", "nosuchdb://x"], "is not usable"),
    (["--storage", "postgresql://u:p@127.0.0.1:9/db"], "cannot reach the database"),
])
def test_bad_storage_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["tune", "--study", "x", "--trials", "1", *TINY, *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_search_space_clash(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["tune", "--study", "c", "--trials", "1", *TINY], capsys)[0] == 0
    code, _, err = run_cli(["tune", "--study", "c", "--trials", "2", "--data", "mnist-sample",
                            "--limit", "300", "--epochs", "3"], capsys)
    assert code == 2 and "different search space" in err


def test_best_of_unknown_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["tune", "best", "nope"], capsys)
    assert code == 2 and "no study 'nope'" in err


# ---------------------------------------------------------------- PostgreSQL

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL server on a loopback port (Debian's binaries, as `postgres`)."""
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries are absent (apt-get install postgresql)")
    import tempfile

    bin_dir = PG_BIN[-1]
    # initdb refuses root: as root, the server runs as `postgres`, in a directory of its own
    # (pytest's tmp_path sits in a root-only folder that user cannot enter).
    home = Path(tempfile.mkdtemp(prefix="mlplab-pg-"))
    data = home / "data"
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(home, "postgres")
    port = free_port()
    subprocess.run([*as_pg, f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U",
                    "postgres"], check=True, capture_output=True)
    subprocess.run([*as_pg, f"{bin_dir}/pg_ctl", "-D", str(data), "-w", "-l",
                    str(home / "log"), "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url
    finally:
        subprocess.run([*as_pg, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def worker(url: str, cwd: Path, trials: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mlplab", "tune", "--study", "pg", "--trials", str(trials),
             "--storage", url, "--data", "mnist-sample", "--limit", "600", "--epochs", "4",
             "--pruner", "none", "--heartbeat", "1"],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, MLPLAB_OFFLINE="1"))


def test_two_workers_one_killed(postgres, tmp_path):
    import optuna
    from optuna.trial import TrialState

    n = 8
    a = worker(postgres, tmp_path, n, tmp_path / "a.log")
    b = worker(postgres, tmp_path, n, tmp_path / "b.log")
    runs = tmp_path / "runs" / "tune-pg"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill b while both workers are inside a trial
        text = (tmp_path / "b.log").read_text() if (tmp_path / "b.log").exists() else ""
        running = [p for p in runs.glob("trial-*/status")
                   if p.read_text().strip() == "running"] if runs.exists() else []
        if "COMPLETE" in text and len(running) == 2:
            break
        time.sleep(0.02)
    os.kill(b.pid, signal.SIGKILL)
    b.wait()
    assert a.wait(timeout=600) == 0, (tmp_path / "a.log").read_text()
    storage = optuna.storages.RDBStorage(postgres)
    trials = optuna.load_study(study_name="pg", storage=storage).get_trials()
    storage.engine.dispose()  # close the connections before the server stops
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(complete) >= n and not running
    assert len(failed) == 1  # the killed worker's trial, found by its stopped heartbeat
    assert len({t.number for t in trials}) == len(trials)  # nothing duplicated
    assert failed[0].system_attrs.get("failed_trial") is None
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE  # it was retried
