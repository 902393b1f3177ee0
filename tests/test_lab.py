"""The seed lab end to end on the embedded sample (with --limit), and its reproducibility."""

from __future__ import annotations

import pytest

from mlplab.cli import main
from mlplab.runs import find_runs, read_history

FILES = ["sample.png", "comparison.png", "report.md", "report.html"]
RUN_FILES = ["model.keras", "history.csv", "curves.png", "config.json", "metrics.json"]


def run_lab(out, capsys, *extra: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(["lab", "--data", "mnist-sample", "--limit", "600", "--epochs", "2",
              "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    return captured.out


@pytest.fixture(scope="module")
def lab_dirs(tmp_path_factory):
    from mlplab.data import load_dataset
    from mlplab.lab import LabOptions
    from mlplab.lab import run_lab as run

    ds = load_dataset("mnist-sample")
    options = LabOptions(data="mnist-sample", limit=600, epochs=2)
    a = tmp_path_factory.mktemp("lab") / "a"
    b = tmp_path_factory.mktemp("lab") / "b"
    run(ds, a, options)
    run(ds, b, options)
    return a, b


def test_lab_writes_every_file(lab_dirs):
    out, _ = lab_dirs
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    for model in ("model_1", "model_2", "model_3"):
        for name in RUN_FILES:
            assert (out / model / name).stat().st_size > 0, (model, name)
        header = (out / model / "history.csv").read_text().splitlines()[0]
        assert header == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"
    report = (out / "report.md").read_text()
    for text in ("50,890", "52,650", "mnist-sample", "sha256", "seed 42", "keras"):
        assert text in report, text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "http" not in html.replace(
        "http-equiv", "")


def test_same_seed_same_history(lab_dirs):
    a, b = lab_dirs
    for model in ("model_1", "model_2", "model_3"):
        ha = read_history(a / model / "history.csv")
        hb = read_history(b / model / "history.csv")
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in ha] == \
               [{k: v for k, v in r.items() if k != "seconds"} for r in hb]


def test_lab_runs_are_runs(lab_dirs):
    a, _ = lab_dirs
    names = [r.name for r in find_runs(a.parent)]
    assert names.count("model_1") == 1 and len(names) == 3


def test_lab_cli_narrates(tmp_path, capsys):
    out = run_lab(tmp_path / "lab", capsys, "--seed", "1")
    assert "(600, 28, 28) uint8 → reshape to (600, 784) float32" in out
    assert "to_categorical" in out and "Total params: 50,890" in out
    assert "model_3 Epoch 2/2" in out and "report.html" in out


def test_lab_on_sample_learns(tmp_path):
    """The full 5,000-digit sample, the lab's settings: model_1 reaches the lab's level."""
    from mlplab.data import load_dataset
    from mlplab.lab import LabOptions
    from mlplab.lab import run_lab as run

    result = run(load_dataset("mnist-sample"), tmp_path / "lab",
                 LabOptions(data="mnist-sample", models=("model_1",)))
    assert result.rows[0]["val_accuracy"] >= 0.80
