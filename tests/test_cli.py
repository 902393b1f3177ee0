"""The console script's exit: codes kept, output and files complete despite the quick exit."""

from __future__ import annotations

import subprocess
import sys

import pytest


def mlplab(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlplab", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_finished_command_leaves_complete_output(tmp_path):
    """After Keras and JAX are loaded the process skips the interpreter's teardown: every
    line printed and every file written must still be there, whole."""
    proc = mlplab("train", "--data", "mnist-sample", "--limit", "256", "--epochs", "2",
                  "--layers", "16", "--name", "quick", "--runs-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch 2/2" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("runs/quick: complete, 2 epochs")
    run = tmp_path / "runs" / "quick"
    from mlplab.models import load_model
    from mlplab.runs import open_run

    opened = open_run(run)
    assert [r["epoch"] for r in opened.history()] == [1, 2]
    assert opened.status == "complete"
    assert load_model(opened.model_path).count_params() == 784 * 16 + 16 + 16 * 10 + 10


@pytest.mark.parametrize(("args", "code"), [(("data", "info", "--data", "no-such-source"), 2),
                                            (("train", "--layers", "0"), 2),
                                            (("--version",), 0)])
def test_exit_codes_and_one_line_errors(tmp_path, args, code):
    proc = mlplab(*args, cwd=tmp_path)
    assert proc.returncode == code
    if code:
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mlplab: error:")
        assert "Traceback" not in proc.stderr
