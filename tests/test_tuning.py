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
    import json

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["tune", "--study", "s", "--trials", "3", *TINY], capsys)
    assert code == 0, err
    assert out.count("COMPLETE") + out.count("PRUNED") == 3 and "best: trial" in out
    study = tmp_path / "runs" / "tune-s"
    trials = sorted(p.name for p in study.glob("trial-*"))
    assert trials == ["trial-0000", "trial-0001", "trial-0002"]
    from mlplab.tuning import BASELINE

    first = json.loads((study / "trial-0000" / "config.json").read_text())
    assert first["layers"] == [BASELINE["units_0"]] and first["lr"] == BASELINE["lr"]
    for name in trials:  # every trial is an ordinary run, validated on half of the test set
        config = json.loads((study / name / "config.json").read_text())
        assert config["validation"] == "test-half" and config["seed"] == 42
        assert config["limit"] == 300
        assert (study / name / "status").read_text().strip() in ("complete", "interrupted")
    # a second worker on a finished study does nothing more
    code, out, _ = run_cli(["tune", "--study", "s", "--trials", "3", *TINY], capsys)
    assert code == 0 and "trial    3" not in out
    code, out, err = run_cli(["tune", "best", "s"], capsys)
    assert code == 0, err
    best = tmp_path / "runs" / "s-best"
    assert (best / "model.keras").exists() and (best / "tune.json").exists()
    # the trial's value is the accuracy of the model the run keeps (its last epoch)
    chosen = json.loads((best / "tune.json").read_text())
    last = (best / "history.csv").read_text().strip().splitlines()[-1].split(",")
    assert float(last[4]) == chosen["value"]
    code, out, err = run_cli(["evaluate", str(best), "--json"], capsys)
    assert code == 0, err
    evaluation = json.loads(out)  # tested on the half of t10k no trial was compared on
    assert evaluation["data"]["test_size"] == 5000
    assert "unseen half" in evaluation["data"]["name"]
    # predict and serve accept it too
    from PIL import Image

    from mlplab.data import load_dataset
    from mlplab.prediction import predict_files

    Image.fromarray(load_dataset("mnist-sample").x_test[0]).save(tmp_path / "d.png")
    assert not predict_files(best, [tmp_path / "d.png"])[0].error
    from mlplab.serving import create_app

    assert create_app(best).state.predictor.describe()["run"]  # what `mlplab serve` builds
    code, _, err = run_cli(["tune", "best", "s"], capsys)  # never overwrites
    assert code == 2 and "already exists" in err
    code, out, err = run_cli(["tune", "report", "s"], capsys)
    assert code == 0, err
    html = (study / "tune.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "trial-0002" in html


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("pruner", ["halving", "median"])
def test_pruned_trials_are_interrupted_runs(pruner, tmp_path, monkeypatch, capsys):
    """Pruning: pruned trials stop early, count as finished, and say `interrupted`."""
    import optuna

    from mlplab.tuning import SearchSpace, tune

    space = SearchSpace(data="mnist-sample", limit=300, epochs=6)
    result = tune(study_name="p", trials=12, runs_dir=tmp_path / "runs", space=space,
                  pruner=pruner)
    states = [t.state for t in result.trials]
    assert len(states) == 12 and optuna.trial.TrialState.PRUNED in states
    for t in result.trials:
        run = Path(t.user_attrs["run"])
        status = (run / "status").read_text().strip()
        epochs = len((run / "history.csv").read_text().strip().splitlines()) - 1
        if t.state == optuna.trial.TrialState.PRUNED:
            assert status == "interrupted" and epochs < 6 and not (run / "model.keras").exists()
        else:
            assert status == "complete" and epochs == 6 and t.value is not None


@pytest.mark.parametrize("args,message", [
    (["--storage", "not-a-url"], "is not a database URL"),
    (["--storage", "nosuchdb://x"], "is not usable"),
    (["--storage", "postgresql://u:p@127.0.0.1:9/db"], "cannot reach the database"),
    (["--storage", "sqlite:////nonexistent/dir/x.db"], "cannot reach the database"),
    (["--validation", "half"], "--validation"),
])
def test_bad_storage_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["tune", "--study", "x", "--trials", "1", *TINY, *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_storage_error_hides_the_password(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["tune", "--study", "x", *TINY, "--storage",
                            "nosuchdb://user:s3cret@host/db"], capsys)
    assert code == 2 and "s3cret" not in err and "user:***@host" in err


def test_search_space_clash(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["tune", "--study", "c", "--trials", "1", *TINY], capsys)[0] == 0
    code, _, err = run_cli(["tune", "--study", "c", "--trials", "2", "--data", "mnist-sample",
                            "--limit", "300", "--epochs", "3"], capsys)
    assert code == 2 and "different search space" in err


@pytest.mark.parametrize("lost", [
    "IntegrityError",  # a duplicate key in PostgreSQL's catalog
    "ProgrammingError",  # 'type "studydirection" already exists': the other committed first
])
def test_a_worker_that_loses_the_schema_race_tries_again(lost, tmp_path, monkeypatch):
    import optuna.storages

    from mlplab.errors import ConfigError
    from mlplab.tuning import open_storage

    real, calls = optuna.storages.RDBStorage, []
    error = type(lost, (Exception,), {})

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise error('(psycopg2.errors.DuplicateObject) type "studydirection" already '
                        'exists' if lost == "ProgrammingError" else "duplicate key value")
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []
    storage.engine.dispose()

    def broken(*args, **kwargs):  # anything else is not retried
        calls.append(args)
        raise error("no such table") if lost == "ProgrammingError" else ValueError("bad")

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    calls.clear()
    with pytest.raises(ConfigError, match="is not usable"):
        open_storage(f"sqlite:///{tmp_path / 'other.db'}")
    assert len(calls) == 1


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
             "--storage", url, *PG_SPACE, "--pruner", "none", "--heartbeat", "2"],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, MLPLAB_OFFLINE="1"))


PG_SPACE = ["--data", "mnist-sample", "--limit", "300", "--epochs", "3"]


def test_two_workers_one_killed(postgres, tmp_path, monkeypatch, capsys):
    """Two workers share 20 trials; one is killed with SIGKILL inside a trial. The other marks
    that trial failed once its heartbeat is 6 s stale, runs its retry, and finishes the 20."""
    import optuna
    from optuna.trial import TrialState

    n = 20
    a = worker(postgres, tmp_path, n, tmp_path / "a.log")
    b = worker(postgres, tmp_path, n, tmp_path / "b.log")
    runs = tmp_path / "runs" / "tune-pg"
    while True:  # kill b while both workers are inside a trial, after b finished one
        if a.poll() is not None or b.poll() is not None:
            pytest.fail("a worker ended before the kill:\n" + (tmp_path / "a.log").read_text()
                        + (tmp_path / "b.log").read_text())
        text = (tmp_path / "b.log").read_text()
        running = [p for p in runs.glob("trial-*/status")
                   if p.read_text().strip() == "running"] if runs.exists() else []
        if "COMPLETE" in text and len(running) == 2:
            break
        time.sleep(0.02)
    os.kill(b.pid, signal.SIGKILL)
    b.wait()
    assert a.wait() == 0, (tmp_path / "a.log").read_text()
    storage = optuna.storages.RDBStorage(postgres)
    trials = optuna.load_study(study_name="pg", storage=storage).get_trials()
    storage.engine.dispose()  # close the connections before the server stops
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == n  # a alone finished the study after the kill: no overshoot
    assert len(failed) == 1 and len(trials) == n + 1  # nothing lost, RUNNING or WAITING
    # the failed trial is b's: its run directory still says `running` (b died in it)
    dead = Path(failed[0].user_attrs["run"])
    assert (dead / "status").read_text().strip() == "running"
    assert failed[0].system_attrs.get("failed_trial") is None
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE  # it was retried
    assert retried[0].params == failed[0].params
    # nothing duplicated: one run directory per trial, each complete one with its model
    assert len({t.user_attrs["run"] for t in trials}) == len(trials)
    assert len(list(runs.glob("trial-*"))) == len(trials)
    for t in complete:
        assert (Path(t.user_attrs["run"]) / "model.keras").exists()
    # the best trial is a run that evaluate accepts
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["tune", "best", "pg", "--storage", postgres], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", str(tmp_path / "runs" / "pg-best")], capsys)
    assert code == 0 and "accuracy" in out, err
    # the same study name with another search space is refused, in one line
    code, _, err = run_cli(["tune", "--study", "pg", "--storage", postgres, "--data",
                            "mnist-sample", "--limit", "300", "--epochs", "4"], capsys)
    assert code == 2 and "different search space" in err and len(err.splitlines()) == 1
