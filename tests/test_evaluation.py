"""Evaluation figures by hand on a tiny case, the evaluate/show commands, and their errors."""

from __future__ import annotations

import io
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


def test_shared_bins_and_mistake_order_by_hand():
    # 5 samples, 3 classes. Confidences 0.95 (right), 0.92 (wrong), 0.55 (wrong), 0.52 (right),
    # 0.5 (wrong): bin (0.9, 1] holds 2 with accuracy 1/2 and mean confidence 0.935;
    # bin (0.5, 0.6] holds 2 with accuracy 1/2 and confidence 0.535; bin (0.4, 0.5] holds 1.
    probs = np.array([[0.95, 0.03, 0.02], [0.92, 0.05, 0.03], [0.25, 0.55, 0.20],
                      [0.52, 0.28, 0.20], [0.20, 0.30, 0.50]])
    full = np.zeros((5, 10))
    full[:, :3] = probs
    y = np.array([0, 2, 0, 0, 1])
    ev = evaluate_probs(full, y)
    expected_ece = (2 * abs(0.5 - 0.935) + 2 * abs(0.5 - 0.535) + 1 * abs(0 - 0.5)) / 5
    assert ev.ece == pytest.approx(expected_ece)
    top = {round(b["low"], 1): b for b in ev.reliability if b["count"]}
    assert sorted(top) == [0.4, 0.5, 0.9]
    assert (top[0.9]["count"], top[0.9]["accuracy"], top[0.9]["confidence"]) == \
        pytest.approx((2, 0.5, 0.935))
    assert ev.accuracy == pytest.approx(2 / 5)
    # the most confident mistakes first: 0.92 (2 → 0), 0.55 (0 → 1), 0.50 (1 → 2)
    assert [(m["index"], m["true"], m["predicted"]) for m in ev.mistakes] == \
        [(1, 2, 0), (2, 0, 1), (4, 1, 2)]
    assert [m["probability"] for m in ev.mistakes] == pytest.approx([0.92, 0.55, 0.5])
    m = np.asarray(ev.confusion)
    assert m.sum() == 5 and m[0, 0] == 2 and m[2, 0] == 1 and m[0, 1] == 1 and m[1, 2] == 1
    # classes that are never predicted nor present get 0, not NaN (as scikit-learn)
    assert ev.per_class[7] == {"class": 7, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                               "support": 0}
    assert json.loads(json.dumps(ev.to_dict())) == ev.to_dict()  # plain JSON, no NaN


def test_confusion_heat_map_pixels():
    """Both panels are drawn, and a full cell is darker than an empty one."""
    import io

    from PIL import Image

    from mlplab.evaluation import confusion_png

    confusion = np.diag([5] * 10)
    confusion[3, 5] = 5  # row 3 is split half/half
    image = Image.open(io.BytesIO(confusion_png(confusion.tolist()))).convert("L")
    assert image.width > 2 * image.height * 0.9  # two panels side by side
    pixels = np.asarray(image, float)
    cell, margin = 44, 48  # the layout of confusion_png

    def centre(i, j, panel=0):
        x = panel * (margin + 10 * cell + 40) + margin + j * cell + 2
        return pixels[margin + i * cell + 2, x]

    assert centre(0, 0) < centre(3, 3) < centre(0, 1) == 255  # 1.0 < 0.5 < empty
    assert centre(0, 0, panel=1) == centre(0, 0)  # the colour is the row-normalized value


@pytest.fixture
def lab_run(lab_dir):
    return lab_dir / "model_1"


@pytest.fixture
def run_copy(lab_run, tmp_path):
    """A copy of the lab's model_1 that a test may change."""
    import shutil

    return shutil.copytree(lab_run, tmp_path / "run")


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
    for name in PANELS:
        assert (tmp_path / "ev" / name).stat().st_size > 0
    metrics = json.loads((lab_run / "metrics.json").read_text())
    assert report["loss"] == pytest.approx(metrics["final"]["val_loss"], rel=1e-4)
    assert report == json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    from mlplab.data import load_dataset

    y_test = load_dataset("mnist-sample").y_test
    assert [c["support"] for c in report["per_class"]] == np.bincount(y_test).tolist()
    assert np.asarray(report["confusion"]).sum(1).tolist() == np.bincount(y_test).tolist()
    assert report["data"]["test_size"] == 10_000 and len(report["mistakes"]) == 24
    page = (tmp_path / "ev" / "evaluation.html").read_text()
    assert f"{report['accuracy']:.4f}" in page and page.count("data:image/png;base64,") == 3
    assert "http://" not in page and "https://" not in page and "<script" not in page


PANELS = ("evaluation.json", "evaluation.html", "confusion.png", "mistakes.png",
          "reliability.png")


def test_every_lab_run_has_evaluation_panels(lab_dir):
    for model in ("model_1", "model_2", "model_3"):
        run = lab_dir / model
        assert all((run / name).stat().st_size > 0 for name in PANELS), model
        evaluation = json.loads((run / "evaluation.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert evaluation["accuracy"] == pytest.approx(metrics["final"]["val_accuracy"],
                                                       abs=1e-6)
    report = (lab_dir / "report.html").read_text()
    for model in ("model_1", "model_2", "model_3"):
        assert f'alt="{model} confusion matrix"' in report
        assert f'alt="{model} most confident mistakes"' in report
        assert f'href="{model}/evaluation.html"' in report
    assert report.count("data:image/png;base64,") == 2 + 3 * 3  # comparison, sample; 3 each
    markdown = (lab_dir / "report.md").read_text()
    assert "(model_2/confusion.png)" in markdown and "(model_3/mistakes.png)" in markdown


def test_evaluate_prints_text_and_writes_into_the_run(run_copy, capsys):
    for name in PANELS:
        (run_copy / name).unlink()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_copy)])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "accuracy" in out and "ECE" in out and "confusion (rows: true" in out
    assert len([line for line in out.splitlines() if line.split()[:1] == ["9"]]) == 2
    assert all((run_copy / name).exists() for name in PANELS)


def test_evaluate_on_other_data(run_copy, npz_dir, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_copy), "--data", str(npz_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert e.value.code == 0 and np.asarray(report["confusion"]).sum() == 100
    assert report["data"]["test_size"] == 100


def test_evaluate_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not an mlplab run" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("inputs", "classes", "message"), [
    (100, 10, "takes 100 inputs but mnist-sample has 784-pixel images"),
    (784, 5, "predicts 5 classes, not the 10 digits"),
])
def test_evaluate_model_that_does_not_fit(run_copy, capsys, inputs, classes, message):
    import keras

    model = keras.Sequential([keras.Input((inputs,)),
                              keras.layers.Dense(classes, activation="softmax")])
    model.save(run_copy / "model.keras")
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_copy)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_evaluate_run_without_model(run_copy, capsys):
    (run_copy / "model.keras").unlink()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_copy)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is the run complete?" in err and len(err.splitlines()) == 1


def test_evaluate_out_is_a_file(lab_run, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(lab_run), "--out", str(tmp_path / "file")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is a file" in err and len(err.splitlines()) == 1


def test_evaluate_missing_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not a directory" in err and len(err.splitlines()) == 1


def test_train_writes_panels_only_when_validating_on_the_test_set(npz_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, extra in (("on-test", []), ("held-out", ["--validation", "0.2"])):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", str(npz_dir), "--epochs", "2", "--runs-dir", str(runs),
                  "--name", name, "--quiet", *extra])
        assert e.value.code == 0
    capsys.readouterr()
    on_test = json.loads((runs / "on-test" / "evaluation.json").read_text())
    metrics = json.loads((runs / "on-test" / "metrics.json").read_text())
    assert on_test["accuracy"] == pytest.approx(metrics["final"]["val_accuracy"], abs=1e-6)
    assert not (runs / "held-out" / "evaluation.json").exists()  # the test set stays unseen
    with pytest.raises(SystemExit) as e:  # until someone asks
        main(["evaluate", str(runs / "held-out"), "--json"])
    assert e.value.code == 0 and json.loads(capsys.readouterr().out)["data"]["test_size"] == 100


def test_reliability_diagram_bars():
    """One bin, (0.9, 1], all right: its bar reaches the top; empty bins draw nothing."""
    import io

    from PIL import Image

    from mlplab.evaluation import reliability_png

    _, bins = calibration(np.array([[0.95, 0.05]] * 4), np.zeros(4, int), bins=10)
    image = np.asarray(Image.open(io.BytesIO(reliability_png(bins, 0.05))).convert("RGB"), int)
    size, left, top = 340, 62, 34  # the layout of reliability_png
    blue = np.array([0x4A, 0x7B, 0xD0])
    assert (image[top + 5, left + int(0.97 * size)] == blue).all()  # the full bar
    assert not (image[top + size - 5, left + int(0.45 * size)] == blue).all()  # no bar


def test_accuracy_in_peoples_styles(lab_run, sample):
    """Each style's accuracy counts the images the preprocessing gives up on as wrong; an
    MNIST-style PNG passes through unchanged, so it scores exactly the plain accuracy."""
    from PIL import Image

    from mlplab.evaluation import evaluate_styles, wilson_interval
    from mlplab.inference import load_forward
    from mlplab.userstyle import STYLES, encode

    def blank(d, rng):  # white paper, no digit: "no digit found" for every image
        return encode(np.ones((60, 60), np.float32))

    forward = load_forward(lab_run / "model.keras")
    styles = {"mnist_png": STYLES["mnist_png"], "web_canvas": STYLES["web_canvas"],
              "blank": blank}
    calls = []
    result = evaluate_styles(forward, sample, per_style=12, styles=styles, jobs=1,
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    idx = np.linspace(0, len(sample.x_test) - 1, 12).round().astype(int)
    x = sample.x_test[idx].reshape(12, -1) / 255.0
    plain = float((forward(x).argmax(1) == sample.y_test[idx]).mean())
    assert result.digits == 12 and result.plain_accuracy == pytest.approx(plain)
    by = {row["style"]: row for row in result.styles}
    assert by["mnist_png"] == {"style": "mnist_png", "accuracy": pytest.approx(plain),
                               "interval": list(wilson_interval(round(plain * 12), 12)),
                               "ratio": pytest.approx(1.0), "failed": 0}
    assert by["web_canvas"]["failed"] == 0 and 0 <= by["web_canvas"]["accuracy"] <= 1
    assert by["blank"]["failed"] == 12 and by["blank"]["accuracy"] == 0.0
    assert result.below_target() == ["blank"] == result.to_dict()["styles_below_target"]
    assert [e["style"] for e in result.examples] == list(styles)
    assert result.examples[2]["seen"] is None and result.examples[2]["predicted"] is None
    from mlplab.evaluation import styles_png

    png = Image.open(io.BytesIO(styles_png(result)))
    assert png.width > 300 and png.height > 100


def test_evaluate_styles_from_the_cli(run_copy, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_copy), "--data", "mnist-sample", "--styles",
              "--per-style", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert e.value.code == 0
    from mlplab.userstyle import STYLES

    assert [s["style"] for s in report["styles"]["styles"]] == list(STYLES)
    assert report["styles"]["digits_per_style"] == 1
    assert report["styles"] == json.loads((run_copy / "styles.json").read_text())
    assert (run_copy / "styles.png").stat().st_size > 0
    page = (run_copy / "evaluation.html").read_text()
    assert "People&#x27;s kinds of image" in page or "People's kinds of image" in page
    assert page.count("data:image/png;base64,") == 4 and "hard_shadow_across_page" in page


def test_wilson_interval_by_hand():
    from mlplab.evaluation import wilson_interval

    assert wilson_interval(19, 20) == pytest.approx((0.7639, 0.9911), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_style_options_without_styles_are_an_error(lab_run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(lab_run), "--per-style", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "go with --styles" in err and len(err.splitlines()) == 1
