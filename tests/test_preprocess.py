"""Preprocessing people's images: accuracy per user style, identity on MNIST, hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mlplab.cli import main
from mlplab.errors import ImageError
from mlplab.preprocess import decode_image, preprocess_bytes, preprocess_file, to_mnist
from userstyle import STYLES

N = 200  # t10k digits per style


@pytest.fixture(scope="module")
def reference(sample):
    """A model trained (with augmentation, as `--recipe best`) on the 5,000 embedded digits."""
    from mlplab.config import TrainConfig
    from mlplab.engine import predict_fn
    from mlplab.training import train

    config = TrainConfig(layers=(512, 512), activation="relu", optimizer="adamw", lr=1e-3,
                         epochs=25, dropout=0.2, schedule="cosine", shift=2, rotation=10,
                         scale=0.1, elastic=1.0, batch_size=128, label_smoothing=0.1)
    return predict_fn(train(config, sample).model)


@pytest.fixture(scope="module")
def plain_accuracy(reference, sample):
    x = sample.x_test[:N].reshape(N, -1) / 255.0
    return float((reference(x).argmax(1) == sample.y_test[:N]).mean())


# Known shortfall: hairline pen strokes (see the README); every other style must keep 97 %.
FLOOR = {"thin_pen": 0.85}


@pytest.mark.parametrize("style", list(STYLES))
def test_accuracy_per_user_style(style, reference, plain_accuracy, sample):
    rng = np.random.default_rng(1234)
    inputs = [preprocess_bytes(STYLES[style](d, rng), name=style) for d in sample.x_test[:N]]
    acc = float((reference(np.stack(inputs).reshape(N, -1)).argmax(1) ==
                 sample.y_test[:N]).mean())
    print(f"{style:22s} {acc:.3f} (plain {plain_accuracy:.3f}, ratio {acc / plain_accuracy:.3f})")
    assert acc >= FLOOR.get(style, 0.97) * plain_accuracy


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, 9999))
def test_mnist_digit_passes_unchanged(sample, index):
    d = sample.x_test[index]
    out = to_mnist(d)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.abs(out - d / 255.0).max() < 1e-6


@settings(max_examples=40, deadline=None, derandomize=True)
@given(index=st.integers(0, 9999))
def test_redrawn_digit_is_nearly_itself(sample, index):
    """The same digit on white paper at 10× comes back close to the original.

    Re-rendering changes stroke greys a little (mean absolute difference measured 0.05-0.16
    over t10k), so the bound is 0.2 of the full pixel range, on a fixed set of examples.
    """
    d = sample.x_test[index]
    big = Image.fromarray(255 - d).resize((280, 280), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    out = preprocess_bytes(buf.getvalue())
    assert np.abs(out - d / 255.0).mean() < 0.2


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width×height (tiny on disk): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + \
        chunk(b"IEND", b"")


def hostile(case: str) -> bytes:
    good = png(np.full((64, 64), 255, np.uint8))
    jpeg = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(jpeg, format="JPEG")
    return {
        "empty": b"",
        "truncated png": png(np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8))[
            :2000],
        "truncated jpeg": jpeg.getvalue()[:300],
        "text": b"hello, this is not an image\n" * 20,
        "html": b"<!DOCTYPE html><html><body>404</body></html>",
        "bomb": huge_png(30_000, 30_000),
        "blank white": good,
        "blank black": png(np.zeros((64, 64), np.uint8)),
        "grey noise": png(np.clip(np.random.default_rng(0).normal(128, 4, (200, 200)), 0, 255)
                          .astype(np.uint8)),
    }[case]


@pytest.mark.parametrize("case,message", [
    ("empty", "empty"), ("truncated png", "truncated or corrupt"),
    ("truncated jpeg", "truncated or corrupt"), ("text", "not an image"),
    ("html", "not an image"), ("bomb", "900,000,000 pixels is more than the 50-megapixel limit"),
    ("blank white", "no digit found"), ("blank black", "no digit found"),
    ("grey noise", "no digit found"),
])
def test_hostile_inputs_are_one_line_errors(case, message):
    with pytest.raises(ImageError, match=message) as e:
        preprocess_bytes(hostile(case), name="upload")
    assert "\n" not in str(e.value) and str(e.value).startswith("upload")


def test_bomb_refused_before_decoding():
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ImageError):
        decode_image(huge_png(30_000, 30_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20_000_000  # nothing near 900 MB of pixels was allocated


def test_exif_orientation_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, format="JPEG", exif=exif.tobytes())
    assert decode_image(buf.getvalue()).size == (100, 200)


def test_preprocess_file_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        preprocess_file(tmp_path / "missing.png")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"e\.png: the file is empty"):
        preprocess_file(tmp_path / "e.png")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, sample):
    from mlplab.config import TrainConfig
    from mlplab.runs import create_run, train_run

    config = TrainConfig(layers=(128,), optimizer="adam", lr=2e-3, epochs=5,
                         data="mnist-sample")
    run = create_run(tmp_path_factory.mktemp("runs"), "p", config)
    train_run(run, config, sample)
    return run.path


def test_predict_cli_good_and_bad_files(small_run, sample, tmp_path, capsys):
    import json

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):
        (folder / f"d{i}.png").write_bytes(STYLES["dark_on_white_large"](sample.x_test[i], rng))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (folder / "blank.png").write_bytes(hostile("blank white"))
    show = tmp_path / "seen"
    with pytest.raises(SystemExit) as e:
        main(["predict", str(small_run), str(folder), "--json", "--show", str(show)])
    out, err = capsys.readouterr()
    assert e.value.code == 2
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4 and all(len(r["probabilities"]) == 10 for r in rows)
    assert sum(r["digit"] == int(sample.y_test[i]) for i, r in enumerate(rows)) >= 3
    assert len(err.strip().splitlines()) == 2 and "no digit found" in err
    assert "Traceback" not in err
    assert len(list(show.glob("*.seen.png"))) == 4


def test_predict_cli_all_good_exit_0(small_run, sample, tmp_path, capsys):
    f = tmp_path / "seven.png"
    f.write_bytes(png(255 - sample.x_test[0]))
    with pytest.raises(SystemExit) as e:
        main(["predict", str(small_run), str(f), "--top", "2"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "seven.png: 7" in out and "top 2" in out


def test_predict_on_non_run_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path), str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not an mlplab run" in err
