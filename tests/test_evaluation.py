"""Evaluation figures by hand on a tiny case, the evaluate/show commands, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.evaluation import calibration, confusion_matrix, evaluate_probs, per_class_scores


def test_tiny_confusion_by_hand():
    # true: 0 0 0 1 1 2 ; predicted: 0 0 1 1 2 2
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = confusion_matrix(y_true, y_pred, k=3)
    assert m.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    scores = per_class_scores(m)
    # class 0: precision 2/2, recall 2/3, F1 = 2·1·(2/3)/(1+2/3) = 0.8
    assert scores[0]["precision"] == pytest.approx(1.0)
    assert scores[0]["recall"] == pytest.approx(2 / 3)
    assert scores[0]["f1"] == pytest.approx(0.8)
    # class 1: precision 1/2, recall 1/2, F1 0.5; class 2: precision 1/2, recall 1
    assert (scores[1]["precision"], scores[1]["recall"], scores[1]["f1"]) == \
        pytest.approx((0.5, 0.5, 0.5))
    assert (scores[2]["precision"], scores[2]["recall"]) == pytest.approx((0.5, 1.0))
    assert [s["support"] for s in scores] == [3, 2, 1]


def test_ece_and_loss_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 1, 1, 0])
    ece, bins = calibration(probs, y, bins=10)
    # bins: 0.9 → (1 sample, correct), 0.8 → (wrong), 0.7 → (correct), 0.6 → (correct)
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.6)) / 4
    assert ece == pytest.approx(expected)
    assert sum(b["count"] for b in bins) == 4
    full = np.zeros((4, 10))
    full[:, :2] = probs
    ev = evaluate_probs(full, y)
    assert ev.accuracy == pytest.approx(0.75)
    assert ev.loss == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.6])))
    assert ev.mistakes[0] == {"index": 1, "true": 1, "predicted": 0, "probability": 0.8}


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory, sample):
    from mlplab.lab import LabOptions, run_lab

    out = tmp_path_factory.mktemp("lab") / "lab"
    run_lab(sample, out, LabOptions(data="mnist-sample", epochs=2, limit=1000,
                                    models=("model_1",)))
    return out / "model_1"


def test_evaluate_json_matches_run(lab_run, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(lab_run), "--json", "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert e.value.code == 0
    report = json.loads(out)
    final = lab_run / "history.csv"
    val_accuracy = float(final.read_text().splitlines()[-1].split(",")[4])
    assert report["accuracy"] == pytest.approx(val_accuracy, abs=1e-6)
    assert np.asarray(report["confusion"]).shape == (10, 10)
    assert np.asarray(report["confusion"]).sum() == 10_000
    assert len(report["per_class"]) == 10 and 0 <= report["ece"] <= 1
    for name in ("evaluation.json", "evaluation.html", "confusion.png", "mistakes.png",
                 "reliability.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0


def test_run_directory_has_evaluation_panels(lab_run):
    assert (lab_run / "evaluation.html").exists() and (lab_run / "confusion.png").exists()
    report = (lab_run.parent / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 5


def test_evaluate_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not an mlplab run" in err and len(err.splitlines()) == 1


def test_evaluate_model_of_other_image_size(lab_run, tmp_path, capsys):
    import shutil

    import keras

    run = tmp_path / "other"
    shutil.copytree(lab_run, run)
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(10, activation="softmax")])
    model.save(run / "model.keras")
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "takes 100 inputs" in err and len(err.splitlines()) == 1


def test_show_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as e:
        main(["show", "--data", "mnist-sample", "--split", "test", "--n", "16", "--label", "3",
              "--out", str(out)])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "1010" in text.replace(",", "") and out.stat().st_size > 5000
