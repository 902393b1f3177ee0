"""``mlplab show``: a labelled grid of sample digits and the split's class counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlplab.cli import main
from mlplab.errors import DataError
from mlplab.evaluation import show_samples


def test_show_grid_of_one_label(tmp_path, capsys):
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as e:
        main(["show", "--data", "mnist-sample", "--split", "test", "--n", "16", "--label", "3",
              "--out", str(out)])
    text = capsys.readouterr().out
    assert e.value.code == 0
    # the real t10k class counts
    assert "[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]" in text
    assert "10,000 digits" in text and "(16 digits)" in text
    with Image.open(out) as image:
        assert image.width > 500 and image.height > 200


def test_show_samples_library(tiny):
    samples = show_samples(tiny, split="train", n=20)
    assert samples.shown == 20 and sum(samples.counts) == 300
    assert samples.counts == np.bincount(tiny.y_train, minlength=10).tolist()
    image = np.asarray(Image.open(io.BytesIO(samples.png)).convert("L"), float)
    assert image.std() > 20  # digits drawn, not a blank page
    test = show_samples(tiny, split="test", n=500, label=4)  # fewer than n: all of them
    assert test.shown == int((tiny.y_test == 4).sum()) and sum(test.counts) == 100


def test_show_label_absent(tiny):
    only_ones = tiny.__class__("ones", tiny.x_train[:5], np.ones(5, np.uint8), tiny.x_test[:5],
                               np.ones(5, np.uint8), {})
    with pytest.raises(DataError, match="has no digits labelled 7"):
        show_samples(only_ones, split="train", label=7)


def test_show_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["show", "--data", "mnist-sample", "--label", "12"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--label" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["show", "--data", "no-such-source"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown data source" in err and len(err.splitlines()) == 1
