"""One path from "any image" to the model's input: a 28×28 MNIST-style digit.

MNIST digits are white ink on black, fitted into a 20×20 box with their aspect ratio
kept, anti-aliased, and placed in a 28×28 frame by centre of mass. People's images are
photos of paper (dark ink on light, off-centre, unevenly lit, noisy, JPEG) or canvas
exports (transparent PNGs). The steps, each robust to what people really produce:

1. decode safely (size checked before pixels are decoded; EXIF orientation; first
   frame; 16-bit, palette, CMYK; transparency composited against the ink's opposite);
2. grey, and downscale large images early (speed);
3. polarity: the border tells the background, dark ink on light paper is inverted;
4. flatten uneven lighting (a coarse background map is subtracted);
5. Otsu threshold, drop small specks and ruled lines, crop to the ink;
6. scale the longest side to 20 px with anti-aliasing, centre by centre of mass.

Used by ``mlplab predict``, the web server and the notebook.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mlplab.errors import ImageError

MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo decodes; a decompression bomb does not
MAX_BYTES = 25 * 1024 * 1024
WORK_SIDE = 160  # images are reduced to about this size before any per-pixel work
BOX, FRAME = 20, 28
SQUARE = np.ones((3, 3), bool)  # 8-connectivity
MIN_SIDE = 4  # pixels: anything smaller cannot hold a digit


# ---------------------------------------------------------------- decoding


HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def is_heif(data: bytes) -> bool:
    """A HEIC/HEIF file (an iPhone's photos, by default): an ISO media file whose brands
    are HEIF's. AVIF, which shares the container and Pillow reads itself, is not."""
    if data[4:8] != b"ftyp":
        return False
    end = min(int.from_bytes(data[:4], "big"), 64)
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}
    return data[8:12] not in (b"avif", b"avis") and bool(brands & HEIF_BRANDS)


@functools.cache
def heif_opener() -> bool:
    """Teach Pillow HEIC/HEIF when the optional pillow-heif is installed (mlplab[heic])."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


# Where Pillow's getexif looks for an orientation (besides a TIFF's own tags).
EXIF_INFO_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def exif_transpose_if_tagged(image: Image.Image) -> None:
    """``ImageOps.exif_transpose(image, in_place=True)`` of a loaded image: skipped (it
    would do nothing) when a format whose orientation Pillow reads only from the info's
    EXIF or XMP has neither: most images, whose EXIF parse cost as much as a small
    image's decoding."""
    if image.format in ("PNG", "JPEG", "GIF", "BMP", "WEBP") and \
            not hasattr(image, "tag_v2") and not any(k in image.info for k in EXIF_INFO_KEYS):
        return
    ImageOps.exif_transpose(image, in_place=True)


def decode_image(data: bytes, *, name: str = "image", max_pixels: int = MAX_PIXELS
                 ) -> Image.Image:
    """Decode image bytes safely; the size is checked from the header before decoding."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data) / 2**20:.0f} MB is more than the "
                         f"{MAX_BYTES // 2**20} MB limit for an image")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<svg")):
        raise ImageError(f"{name}: is an HTML/XML document, not an image")
    if head.startswith(b"%pdf"):
        raise ImageError(f"{name}: is a PDF document, not an image; export the page as PNG "
                         "or JPEG")
    if is_heif(data) and not heif_opener():
        raise ImageError(f"{name}: is a HEIC/HEIF photo (an iPhone's usual format), which "
                         "needs pillow-heif: pip install 'mlplab[heic]', or send it as JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings (size checked below), bad EXIF…
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{name}: {width}×{height} pixels is more than the "
                                 f"{max_pixels / 1e6:.0f}-megapixel limit; resize it first")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if image.format == "JPEG" and max(width, height) > 2 * WORK_SIDE:
                # Decode at 1/2-1/8 scale, and grey (libjpeg skips the colour conversion).
                image.draft("L", (WORK_SIDE, WORK_SIDE))
                if image.size != (width, height):
                    image.info["mlplab_jpeg"] = data  # for a sharper look (sharp_crop)
                    image.info["mlplab_jpeg_side"] = max(width, height)  # (jpeg_gain)
                image.decodermaxblock = len(data)  # one read: no 64 KB pieces to rejoin
            image.load()
            exif_transpose_if_tagged(image)  # (not a copy of every image)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        import re

        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "the image"
        raise ImageError(f"{name}: refused, {size} is more than the {max_pixels / 1e6:.0f}-"
                         "megapixel limit (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: is not an image Pillow can read (PNG, JPEG, GIF, BMP, "
                         "WebP, TIFF, AVIF, HEIC)") from None
    except MemoryError:
        raise ImageError(f"{name}: the image needs more memory to decode than is available; "
                         "resize it first") from None
    except Exception as e:  # a damaged file makes Pillow's decoders raise all sorts of types
        detail = " ".join(str(e).split())[:120] or type(e).__name__
        raise ImageError(f"{name}: the image is truncated or corrupt ({detail})") from None
    return image


def to_grey(image: Image.Image) -> np.ndarray:
    """Grey float32 in [0, 1]; transparency composited so that the ink stays visible."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        full = 65535.0 if image.mode.startswith("I;16") or hi > 255 else \
            1.0 if image.mode == "F" and hi <= 1.0 else 255.0  # (to_mnist's 0-1 arrays)
        return np.clip((arr - min(lo, 0.0)) / full, 0, 1).astype(np.float32)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        if alpha.min() > 0.98:  # opaque after all
            return grey
        drawn = alpha > 0.5
        # Composite against the colour opposite to the ink, so black-on-transparent and
        # white-on-transparent canvases both keep their strokes.
        ink = median(grey[drawn]) if drawn.any() else 0.0
        background = 1.0 if ink < 0.5 else 0.0
        return (grey * alpha + background * (1 - alpha)).astype(np.float32)
    if image.mode != "L":
        image = image.convert("RGB").convert("L")  # CMYK, YCbCr, 1, RGB…
    return np.asarray(image, dtype=np.float32) / 255.0


def reduce_for_work(image: Image.Image, *, side: int = WORK_SIDE) -> Image.Image:
    """Shrink a large image (area-averaging keeps thin strokes as faint grey)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    longest = max(image.size)
    if longest <= side:
        return image
    factor = -(-longest // side)  # ceil: the result is at most ``side``
    return image.reduce(factor) if factor >= 2 else image


# ---------------------------------------------------------------- the pipeline


def is_mnist_style(grey: np.ndarray) -> bool:
    """A 28×28 white-on-black digit on a clean black background: leave it as it is."""
    if grey.shape != (FRAME, FRAME):
        return False
    border = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel(),
                             grey[:, -2:].ravel()])
    # Strokes may touch the border (MNIST centres by mass), but most of it is black.
    return (median(border) < 0.05 and float(border.mean()) < 0.15
            and median(grey) < 0.05 and float(grey.max()) > 0.5)


def to_mnist(image: Image.Image | np.ndarray, *, normalize_stroke: bool = False) -> np.ndarray:
    """Any digit image (PIL image or array) → float32 (28, 28) in [0, 1], white on black.

    Strokes far thicker or thinner than any in MNIST (a marker, a hairline) are always
    brought into MNIST's range; ``normalize_stroke`` moves every digit to its median width.
    """
    if isinstance(image, Image.Image):
        return image_to_mnist(image, normalize_stroke=normalize_stroke)
    grey = np.asarray(image, dtype=np.float32)
    if grey.ndim == 3 and grey.shape[-1] in (1, 2, 3, 4):  # H×W×C array
        grey = grey[..., :3].mean(-1) if grey.shape[-1] >= 3 else grey[..., 0]
    if grey.ndim != 2 or min(grey.shape) < MIN_SIDE:
        raise ImageError(f"an image of shape {np.shape(image)} is not a 2-D picture")
    if not np.isfinite(grey).all():
        raise ImageError("the image contains NaN or infinite values")
    if grey.max() > 1.0:
        grey = grey / (65535.0 if grey.max() > 255 else 255.0)
    grey = np.clip(grey, 0, 1)
    if is_mnist_style(grey):
        return grey.astype(np.float32)
    if max(grey.shape) > 2 * WORK_SIDE:
        return image_to_mnist(Image.fromarray(grey, mode="F"), normalize_stroke=normalize_stroke)
    coverage, (*_, tilt) = isolate_ink(grey)
    return render(untilt(coverage, tilt), normalize_stroke=normalize_stroke)


def image_to_mnist(image: Image.Image, *, normalize_stroke: bool = False) -> np.ndarray:
    """Find the digit on a reduced copy, then redo the work on a sharper crop around it.

    A small digit on a big photo would keep only a few pixels after the first reduction;
    the second pass cuts the region out of the decoded image and reduces only that.
    """
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"no digit found: the image is only {image.width}×{image.height} "
                         f"pixels (at least {MIN_SIDE}×{MIN_SIDE} needed)")
    small = reduce_for_work(image)
    grey = to_grey(small)
    if is_mnist_style(grey):
        return np.clip(grey, 0, 1).astype(np.float32)
    try:
        coverage, (top, bottom, left, right, inverted, tilt) = isolate_ink(grey)
    except ImageError:
        if max(image.size) <= WORK_SIDE:
            raise
        # A digit a few pixels high on a big page can vanish in the reduction: look again
        # at three times the size before giving up (only blank images pay for this), and
        # at four, a JPEG decoded again that large (a 24-px digit on a 12-MP photo was
        # 3 px at 1/8 scale).
        small = reduce_for_work(image, side=3 * WORK_SIDE)
        grey = to_grey(small)
        try:
            coverage, (top, bottom, left, right, inverted, tilt) = isolate_ink(grey)
        except ImageError:
            sharper = redecode(image, max(image.size) * jpeg_gain(image) / (4 * WORK_SIDE))
            if sharper is None:
                raise
            image, small = sharper, reduce_for_work(sharper, side=4 * WORK_SIDE)
            grey = to_grey(small)
            coverage, (top, bottom, left, right, inverted, tilt) = isolate_ink(grey)
    scale = image.width / small.width
    side = max(bottom - top, right - left)
    if scale > 1.5 and side < 0.25 * WORK_SIDE:  # under 40 px: too few for the 80-px mask
        # Enough paper around the digit for the crop's own background map (a crop under
        # 48 px is taken as evenly lit, which a shadow's edge across it is not).
        pad_y = max(0.25 * side + 2, (64 / scale - (bottom - top)) / 2)
        pad_x = max(0.25 * side + 2, (64 / scale - (right - left)) / 2)
        box = (max(0, int((left - pad_x) * scale)), max(0, int((top - pad_y) * scale)),
               min(image.width, int((right + pad_x) * scale) + 1),
               min(image.height, int((bottom + pad_y) * scale) + 1))
        crop = to_grey(reduce_for_work(sharp_crop(image, box, side * scale)))
        # The first pass saw the whole page and chose the digit; the sharper look keeps to
        # it (a shadow's edge or a page's corner inside the crop is not taken for ink).
        found = np.zeros(grey.shape, bool)
        y0, x0 = max(top - 1, 0), max(left - 1, 0)
        found[y0:y0 + coverage.shape[0], x0:x0 + coverage.shape[1]] = coverage > 0.05
        found = 255 * dilate3(dilate3(found)).astype(np.uint8)  # a 5×5 maximum
        found = np.asarray(Image.fromarray(found).resize(
            crop.shape[::-1], Image.Resampling.BILINEAR,
            box=(box[0] / scale, box[1] / scale, min(box[2] / scale, grey.shape[1]),
                 min(box[3] / scale, grey.shape[0]))), np.float32) / 255
        try:
            sharper, (top2, bottom2, left2, right2, *_) = isolate_ink(
                crop, inverted=inverted, guide=found)
        except ImageError:
            pass  # keep the first pass's digit
        else:
            # Unless the sharper look lost most of it, both ways (a bold digit filling the
            # crop, its strokes as wide as the background's window, is taken for the
            # background, and only a corner is left): a line or shadow taken off is one way.
            k = crop.shape[0] * scale / (box[3] - box[1])  # crop pixels per first-pass one
            if (bottom2 - top2) >= 0.6 * k * (bottom - top) or \
                    (right2 - left2) >= 0.6 * k * (right - left):
                coverage = sharper
    return render(untilt(coverage, tilt), normalize_stroke=normalize_stroke)


def sharp_crop(image: Image.Image, box: tuple[int, int, int, int], digit: float
               ) -> Image.Image:
    """``box`` (in ``image``'s pixels) cut from a sharper decode when ``image`` is a JPEG
    that decode_image read at reduced scale and the digit in it (``digit`` px high or
    wide) is too small to keep its strokes: a digit a few percent of a big photo's height
    was 5-15 px at 1/8 scale."""
    side = max(box[2] - box[0], box[3] - box[1])
    data = image.info.get("mlplab_jpeg")
    full = None
    if data is not None and side < WORK_SIDE and digit < 32:
        gain = jpeg_gain(image)
        # A reduction (JPEG decodes at 1/1-1/8) that gives the digit about 48 px: enough
        # for its strokes, while a grid's lines or dots stay as faint as at first.
        reduction = max(1.0, min(gain, digit * gain / 48))
        full = redecode(image, reduction) if reduction < gain / 1.5 else None
    if full is None:
        return image.crop(box)
    k = full.width / image.width
    return full.crop((int(box[0] * k), int(box[1] * k), min(full.width, int(box[2] * k) + 1),
                      min(full.height, int(box[3] * k) + 1)))


def jpeg_gain(image: Image.Image) -> float:
    """How much smaller decode_image read a JPEG than it is (1 when it read it whole)."""
    side = image.info.get("mlplab_jpeg_side")
    return 1.0 if side is None else side / max(image.size)


def redecode(image: Image.Image, reduction: float) -> Image.Image | None:
    """A JPEG that decode_image read at reduced scale, decoded again with at least
    1/reduction of its full size (JPEG decodes at 1/1, 1/2, 1/4 or 1/8); None when that is
    no sharper, or anything odd happens (it was decoded once already)."""
    data = image.info.get("mlplab_jpeg")
    if data is None or 2 ** int(np.log2(max(reduction, 1.0))) >= jpeg_gain(image):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = Image.open(io.BytesIO(data))
            full.draft("L", (int(full.width / reduction), int(full.height / reduction)))
            full.load()
            exif_transpose_if_tagged(full)
    except Exception:
        return None
    full.info["mlplab_jpeg"] = data
    full.info["mlplab_jpeg_side"] = image.info["mlplab_jpeg_side"]
    return full


def untilt(coverage: np.ndarray, tilt: float) -> np.ndarray:
    """Turn the digit's coverage back by the tilt of the sheet it was written on."""
    if not tilt:
        return coverage
    image = Image.fromarray(coverage.astype(np.float32), mode="F")
    return np.asarray(image.rotate(tilt, Image.Resampling.BILINEAR, expand=True),
                      np.float32)



def kth(x: np.ndarray, k: int, *, largest: bool = False) -> float:
    """The k-th smallest (or largest) value of ``x`` in [0, 1] to 1/1024 (rounded down into
    one of 1,024 bins)."""
    return ranks(x)(k, largest=largest)


def kth_pair(x: np.ndarray, k: int) -> tuple[float, float]:
    """``kth(x, k)`` and ``kth(x, k, largest=True)``, sorting or counting ``x`` once."""
    ranked = ranks(x)
    return ranked(k), ranked(k, largest=True)


def ranks(x: np.ndarray) -> Callable[..., float]:
    """``kth`` for any k of ``x``: from its values counted into the bins (large float
    arrays) or else sorted."""
    if x.size >= BINNED_MIN and x.dtype in (np.float32, np.float64):
        return functools.partial(kth_binned, rank_bins(x))
    return functools.partial(kth_sorted, np.sort(x.ravel()))


BINNED_MIN = 2_000  # values: from here, counting into bins beats a sort (4-8× at 25k)


def rank_bins(x: np.ndarray) -> np.ndarray:
    """How many of ``x``'s values (float32 or float64) lie in :func:`kth_sorted`'s bins 0..i,
    for each i: the bin of value v is int(v · 1023) in x's precision, clipped to 0-1023, a
    non-decreasing function of v, so the k-th smallest value's bin is the bin where these
    counts first pass k (the same bin, without a sort)."""
    scaled = np.multiply(x.ravel(), 1023.0)  # (in x's precision, as kth_sorted's product)
    np.clip(scaled, 0, 1023, out=scaled)  # (int() then clipping: the same bin)
    return np.add.accumulate(np.bincount(scaled.astype(np.intp), minlength=1024))


def kth_binned(counts: np.ndarray, k: int, *, largest: bool = False) -> float:
    """:func:`kth_sorted` from :func:`rank_bins`'s counts instead of the sorted values."""
    # (The first bin past ``rank`` values.)
    return kth_of_bins(int(counts[-1]), k, largest,
                       lambda rank: int(counts.searchsorted(rank, side="right")))


def kth_of_bins(n: int, k: int, largest: bool, bin_of: Callable[[int], int]) -> float:
    """The k-th smallest (largest) of n values to 1/1024, given the bin (0-1023) of the
    value of each rank."""
    rank = n - 1 - k if largest else k
    if not 0 <= rank < n:  # past either end: as the histogram's search gave
        i = 1024 if k >= n else 0
    else:
        i = bin_of(rank)
        if largest:
            i = 1023 - i
    value = min(i, 1023) / 1023.0
    return 1.0 - value if largest else value


def kth_sorted(ordered: np.ndarray, k: int, *, largest: bool = False) -> float:
    """``kth`` of values already sorted (to ask for several of one array's).

    The bins are in the same order as the values, so the k-th smallest bin is the bin of
    the k-th smallest value: one sort (vectorised, and unhurt by a clean image's many
    equal values, unlike ``np.partition``) instead of a 1,024-bin histogram of every pixel.
    """
    # (The value's bin in x's precision, as the counted bins.)
    return kth_of_bins(ordered.size, k, largest,
                       lambda rank: min(max(int(ordered[rank] * 1023.0), 0), 1023))


def median(x: np.ndarray) -> float:
    """``float(np.median(x))`` of a float array (the same number), by a sort: the partition
    np.median uses is several times slower on a clean image's many equal values."""
    return median_sorted(np.sort(x.ravel()))


def median_sorted(flat: np.ndarray) -> float:
    """:func:`median` of values already sorted."""
    n = flat.size
    if n == 0 or flat.dtype.kind != "f":
        return float(np.median(flat))
    middle = n // 2
    if n % 2:
        return float(flat[middle])
    return float((flat[middle - 1] + flat[middle]) / 2)  # in x's precision, as np.median


def top_value(x: np.ndarray, k: int = 3) -> float:
    """The k-th brightest value (exact): a few bright pixels, not only the brightest one."""
    flat = x.ravel()
    if flat.size <= k:
        return 0.0
    peak = float(flat.max())
    candidates = flat[flat >= 0.5 * peak]
    if candidates.size < k:
        candidates = flat
    return float(np.sort(candidates)[-k])  # a sort: np.partition is slow on equal values


def border_pixels(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    b = max(1, min(h, w) // 20)
    return np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(),
                           grey[:, -b:].ravel()])


def is_inverted(grey: np.ndarray) -> bool:
    """True for dark ink on light paper: the ink is whatever departs most from the border."""
    border = np.sort(border_pixels(grey))
    background = median_sorted(border)
    # The ink's extreme: the k-th darkest or brightest pixel, past a few noise pixels. A
    # small, thin digit on a big photo (a 1 a few percent of a notebook page's height) is
    # only a handful of pixels at the working size: k at 1/2000 of the pixels passed it by
    # and judged a lighter patch of the page to be the ink (12 of 150 such photos; at
    # 1/8000 none of 2,080 suite and bench images changed polarity).
    k = min(max(3, grey.size // 8000), grey.size - 1)
    darkest, brightest = kth_pair(grey, k)
    margin = (background - darkest) - (brightest - background)
    if abs(margin) > 0.35 or min(grey.shape) < 48:
        return margin > 0
    # Close call: first, which way the ink departs from a coarse local median of the paper
    # (cheap; a flash's bright spot or a vignette lies beyond the border's range, but not
    # beyond its own neighbourhood). Only a clear answer is taken.
    departure = local_departure(grey, k)
    # A shadow across the page puts much of the border in the dark, and the lit paper,
    # brighter than the border's median (by up to 0.35 more than the ink is darker, in a
    # deep shadow), runs into the frame too. The ink does not: it lies beyond everything
    # the border holds (its 2nd-98th percentiles).
    low = kth_sorted(border, border.size // 50)
    high = kth_sorted(border, border.size - 1 - border.size // 50)
    beyond = (low - darkest) - (brightest - high)
    # The local answer first, unless it is weak and the border's is strong the other way:
    # windows straddling a hard shadow's edge take the dark side's median, and the lit
    # side then looks like bright ink (-0.12 to -0.16 on such photos; the border's 0.3+).
    if abs(departure) >= 0.1 and not (abs(departure) < 0.2 and abs(beyond) > 0.25 and
                                      (departure > 0) != (beyond > 0)):
        return departure > 0
    minority = edge_minority(grey)
    if abs(minority) > 0.05:
        return minority > 0
    if abs(beyond) > 0.15:
        return beyond > 0
    # Still close: ask which way the ink departs from its local background, the median of its
    # neighbourhood (a median keeps a shadow's edge where it is; the ink is a minority).
    from scipy import ndimage

    factor = max(1, min(grey.shape) // 40)
    coarse = Image.fromarray(grey.astype(np.float32), mode="F").reduce(factor)
    local = ndimage.median_filter(np.asarray(coarse), size=max(5, min(coarse.size) // 3))
    local = np.asarray(Image.fromarray(local, mode="F").resize(
        grey.shape[::-1], Image.Resampling.BILINEAR))
    return ink_departure(grey, local, k) > 0


def edge_minority(grey: np.ndarray) -> float:
    """How much the dark side is the minority (> 0: dark ink) among the pixels round the
    sharp edges. Ink's outline is the sharpest edge in a photo of paper; a vignette's or a
    flash's fall-off is smooth. Round the outlines, the ink is the lesser part (the paper
    between a thick digit's strokes is as bright, and as narrow, as bright ink would be)."""
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]
    gx = np.abs(np.diff(grey, axis=1))[:-1]
    gradient = np.maximum(gx, gy)
    k = max(3, gradient.size // 400)
    sharp = gradient > 0.4 * kth(gradient.ravel(), k, largest=True)
    # A hard shadow's edge is as sharp, but it runs into the frame; the ink's outline
    # (in this close call) does not.
    labels, n, _ = label8(sharp)
    sharp &= ~pieces_at_frame(labels, n)[labels]
    if not sharp.any():
        return 0.0
    middle = median(grey[:-1, :-1][sharp])  # halfway between the two sides of the edges
    top, bottom, left, right = bbox(sharp)
    pad = max(2, min(grey.shape) // 20)
    region = grey[max(0, top - pad):bottom + pad, max(0, left - pad):right + pad]
    return 0.5 - float(np.count_nonzero(region < middle)) / region.size


def ink_departure(grey: np.ndarray, local: np.ndarray, k: int) -> float:
    """How much further the k-th darkest pixel lies below its local background than the
    k-th brightest lies above it (> 0: dark ink)."""
    darkest, brightest = kth_pair(np.clip(0.5 + (grey - local), 0, 1), k)
    return (0.5 - darkest) - (brightest - 0.5)


def local_departure(grey: np.ndarray, k: int) -> float:
    """:func:`ink_departure` from a local background: the median of overlapping windows (a
    third of the short side, at half-window steps) of a ~40-px copy, interpolated back:
    the ink is a minority in every window, a shadow's or a flash's slow change is
    followed."""
    from numpy.lib.stride_tricks import sliding_window_view

    factor = max(1, min(grey.shape) // 40)
    coarse = np.asarray(Image.fromarray(grey.astype(np.float32), mode="F").reduce(factor))
    size = max(5, min(coarse.shape) // 3)
    step = max(1, size // 2)
    windows = sliding_window_view(coarse, (size, size))[::step, ::step]
    medians = np.median(windows.reshape(*windows.shape[:2], -1), axis=-1).astype(np.float32)

    def axis(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # grey's pixel centres in window-grid units (the windows' centres at 0, 1, …)
        at = np.clip(((np.arange(n) + 0.5) / factor - 0.5 - (size - 1) / 2) / step, 0, m - 1)
        lo = np.minimum(at.astype(np.intp), max(m - 2, 0))
        return lo, np.minimum(lo + 1, m - 1), (at - lo).astype(np.float32)

    y0, y1, ty = axis(grey.shape[0], medians.shape[0])
    x0, x1, tx = axis(grey.shape[1], medians.shape[1])
    rows = medians[y0] * (1 - ty)[:, None] + medians[y1] * ty[:, None]
    return ink_departure(grey, rows[:, x0] * (1 - tx) + rows[:, x1] * tx, k)


SHEET_MIN = 0.04  # of the frame: the smallest sheet or canvas looked for (a screenshot's)


def solid(region: np.ndarray) -> bool:
    """Whether a region can be a sheet or canvas: one under a tenth of the frame only when
    half of it survives a 3×3 erosion (a digit's strokes, the other small bright or dark
    region an image has, mostly do not, and are looked at no further). Larger ones can."""
    count = np.count_nonzero(region)
    return count >= 0.1 * region.size or np.count_nonzero(erode3(region)) >= 0.5 * count


def mask_surround(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`mask_desk` for a light sheet on a darker desk, or else for a dark one in a
    light surround: a drawing app's black canvas in a light window (a screenshot)."""
    masked, tilt = mask_desk(grey)
    if masked is not grey:
        return masked, tilt
    negative = 1.0 - grey
    # (Cheaply first) a canvas lies inside the frame and fills its box; strokes do not.
    region = negative > otsu(negative)
    if not SHEET_MIN <= fraction(region) < 0.995 or touches_frame(region) or \
            not solid(region):
        return grey, 0.0
    labels, n, window = label8(region)
    largest = labels == 1 + int(np.argmax(np.bincount(labels[window].ravel())[1:]))
    top, bottom, left, right = bbox(largest)
    if np.count_nonzero(largest) < 0.5 * (bottom - top) * (right - left):
        return grey, 0.0
    masked, tilt = mask_desk(negative)
    # Only an upright rectangle inside the frame: a hard shadow across a page is dark
    # and sharp-edged too, but runs into the frame at any angle.
    if masked is negative or abs(tilt) > 2 or not upright_inside(masked == negative):
        return grey, 0.0
    return 1.0 - masked, tilt


def upright_inside(region: np.ndarray) -> bool:
    """Whether the region (it must have pixels) is an upright rectangle clear of the
    frame's edges: it fills 90% of its bounding box, which touches no edge."""
    top, bottom, left, right = bbox(region)
    h, w = region.shape
    return (top > 0 and left > 0 and bottom < h and right < w and
            np.count_nonzero(region) >= 0.9 * (bottom - top) * (right - left))


def mask_desk(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """A sheet of paper photographed on a darker desk (or a photo rotated with its
    corners filled black): what lies outside the sheet becomes the sheet's colour, so
    that the desk's edge is neither the background the polarity is judged by nor ink.
    Also returns the sheet's tilt in degrees (its edges' direction; 0 when no sheet is
    found): the digit was written upright on the sheet."""
    from scipy import ndimage

    h, w = grey.shape
    if min(h, w) < 48:
        return grey, 0.0
    t = otsu(grey)
    border = border_pixels(grey)
    bright = grey > t
    lit = fraction(bright)
    few = max(5, grey.size // 2000)  # pixels: fewer are noise, not a digit's strokes
    # Some of the frame darker than the threshold, a large bright region inside it.
    if fraction(border < t) < 0.01 or not SHEET_MIN < lit < 0.995 or not solid(bright):
        return grey, 0.0
    # The sheet's edge is sharp: few pixels lie between desk and paper (a lighting
    # gradient or a vignette, split in two by the threshold, has them everywhere).
    sample = np.sort(grey[::2, ::2], axis=None)  # (sorted once for both medians)
    split = int(sample.searchsorted(t, side="right"))  # values <= t, then those > t
    level, paper = median_sorted(sample[:split]), median_sorted(sample[split:])
    gap = paper - level
    if gap < 0.15:
        return grey, 0.0
    graded = fraction((sample > level + gap / 4) & (sample < paper - gap / 4)) > 0.1
    labels, n = label(bright, SQUARE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    sheet = labels == 1 + int(np.argmax(sizes))
    filled = fill_holes(sheet)
    # Round a sheet lies the desk, mostly darker: a strip of a notebook page between two
    # dark ruled lines is surrounded by more of the page.
    outside = ~filled
    # No desk at all: the "sheet" fills the frame, and what is dark at the border lies
    # inside it (a drawing app's canvas near a light window's edge, taken for a hole).
    if not outside.any() or \
            np.count_nonzero(bright & outside) > 0.5 * np.count_nonzero(outside):
        return grey, 0.0
    # And the desk (the dark outside) is a region, a strip or a corner, not the ends of a
    # grid's or a ruling's darker lines where they meet the frame: much of it survives a
    # 3×3 erosion (beyond the frame counts as desk).
    desk = framed(outside & ~bright, True)
    if np.count_nonzero(erode3(desk)[1:-1, 1:-1]) < 0.25 * np.count_nonzero(desk[1:-1, 1:-1]):
        return grey, 0.0
    if graded:
        # Light falling unevenly across a sheet puts much of it between desk and paper
        # too; but the sheet's outline (inside the frame) is still a step, where a
        # gradient's or a vignette's threshold line is not: the 3×3 range across it.
        edge = filled & ~erode3(filled)
        edge[[0, -1], :] = False
        edge[:, [0, -1]] = False
        if not edge.any() or median((max3(grey) + max3(-grey))[edge]) < 0.4 * gap:
            return grey, 0.0
    top, bottom, left, right = bbox(filled)
    box_area = (bottom - top) * (right - left)
    # A sheet is solid (a quadrilateral holding a few ink strokes), a digit's strokes,
    # however bold, are not.
    # The digit is on the sheet (as holes in it): a lit patch of a shadowed page without
    # the digit is not a sheet.
    area = int(filled.sum())
    holes = area - int(sheet.sum())
    marks = filled & ~sheet
    mean9 = None
    if holes < few:
        # A small or faint digit (a thin pen's few pixels at the working size, a pencil)
        # stays above the threshold between desk and paper: on the sheet, it is what is
        # darker than its surroundings by more than the noise.
        mean9 = ndimage.uniform_filter(grey, size=9)
        spots = erode3(filled) & (mean9 - grey > max(0.04, 5 * min(noise_levels(grey))))
        if np.count_nonzero(spots) >= 3:
            marks, holes = spots, few
    if lit < 0.3 or area < 0.25 * grey.size or area < 0.7 * box_area or \
            holes > 0.15 * area or holes < few:
        # A smaller sheet (a sticky note, a card on a desk) is turned any way: it fills its
        # own rotated box nearly as a rectangle does (a sheet seen at an angle, a trapezoid,
        # 0.86; a bold 0's ellipse fills 0.79 of any box),
        # and its outline runs in two directions at right angles (a bold 0's or 8's does not);
        # a drawing app's canvas in a dark window may hold a quarter of its area in ink,
        # and an upright one inside the frame (a screenshot's) 40% (a thick brush's digit).
        share = 0.4 if upright_inside(filled) else 0.25
        if not (SHEET_MIN * grey.size <= area and share * area >= holes >= few and
                area >= 0.84 * rotated_box_area(filled) and
                edge_alignment(filled) >= 0.7):
            return grey, 0.0
    inside = erode3(erode3(filled))
    if not inside.any():
        return grey, 0.0
    # A desk holds no ink; paper in a shadow does (the ink there is far darker than it).
    # Judged away from the sheet's edge (a thin black sliver's edge is grey, not desk).
    # (No core at all: only slivers at the frame, a slightly rotated photo's corners.)
    core = ~dilate3(dilate3(filled))
    paper = median(grey[sheet & inside])
    if core.any():
        outside = grey[core]
        level = median(outside)
        darkest = kth(grey, min(few, grey.size - 1))
        # Ink is strokes: dark pixels beside dark pixels (a textured desk's grain and the
        # sensor's noise leave single ones), darker than what is around them (a vignette
        # darkens a desk's corners smoothly: dark, but no darker than its surroundings),
        # and by at least half the share of the light that the digit's ink takes from the
        # sheet: in a shadow, paper and ink lose light alike, so ink there keeps its share
        # (a wooden desk's grain takes far less). ``ink``: the ink's light ÷ the paper's.
        ink_pixels = grey[marks]  # the sheet's holes (or dark spots): the digit
        ink = kth(ink_pixels, ink_pixels.size // 4) / max(paper, 1e-3)
        if mean9 is None:
            mean9 = ndimage.uniform_filter(grey, size=9)
        around = np.minimum(mean9, level)
        dark = core & (grey < np.minimum(around - max(0.1, 0.3 * (level - darkest)),
                                         around * (0.5 + 0.5 * min(ink, 1.0))))
        if (dark & dilate_ring(dark)).sum() >= few:
            return grey, 0.0
    return np.where(inside, grey, paper).astype(np.float32), sheet_tilt(filled)


def rotated_box_area(region: np.ndarray) -> float:
    """The area of the region's bounding box turned to its edges' direction (the
    smallest over the directions of its outline, within 1°)."""
    ys, xs = np.nonzero(region & ~erode3(region))
    if len(ys) < 3:
        return float(region.size)
    angle = np.radians(np.arange(0.0, 90.0, 1.0, dtype=np.float32))[:, None]
    c, s = np.cos(angle), np.sin(angle)
    xs, ys = xs.astype(np.float32)[None], ys.astype(np.float32)[None]
    u, v = xs * c + ys * s, ys * c - xs * s
    return float(((np.ptp(u, 1) + 1) * (np.ptp(v, 1) + 1)).min())


def edge_alignment(region: np.ndarray) -> float:
    """How much of the region's outline runs in two directions at right angles: 1 for a
    rectangle turned any way, near 0 for a round shape."""
    c, s, total = outline_directions(region, region & ~erode3(region))
    total = float(total)
    return float(np.hypot(c, s)) / total if total > 0 else 0.0


def outline_directions(region: np.ndarray, edge: np.ndarray
                       ) -> tuple[np.float32, np.float32, np.float32]:
    """The ``edge`` pixels' outline directions, summed as (cos 4φ, sin 4φ) weighted by the
    gradient of the smoothed region, and the weights' total: edges at right angles agree
    modulo 90°, so a rectangle's outline adds up and a round one cancels out."""
    from scipy import ndimage

    smooth = ndimage.uniform_filter(region.astype(np.float32), 5)
    gy, gx = np.gradient(smooth)
    gy, gx = gy[edge], gx[edge]
    weight = np.hypot(gy, gx)
    phi = 4 * np.arctan2(gy, gx)
    return (weight * np.cos(phi)).sum(), (weight * np.sin(phi)).sum(), weight.sum()


def sheet_tilt(sheet: np.ndarray) -> float:
    """The direction of a sheet's straight edges inside the frame, in degrees (within
    ±20°; 0 when the edges are not straight and square enough to tell)."""
    edge = sheet & ~erode3(sheet)
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = False, False, False, False
    if edge.sum() < 20:
        return 0.0
    c, s, total = outline_directions(sheet, edge)
    c, s = float(c), float(s)
    if np.hypot(c, s) < 0.6 * float(total):
        return 0.0
    tilt = float(np.degrees(np.arctan2(s, c) / 4))
    return tilt if 1.0 <= abs(tilt) <= 20.0 else 0.0


def isolate_ink(grey: np.ndarray, *, inverted: bool | None = None,
                guide: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """The digit's ink coverage (1 = ink, 0 = background), cropped; raise if there is none.

    Returns the crop and (top, bottom, left, right, inverted) in ``grey``'s coordinates.
    Half the typical ink level is the ink's edge, as MNIST's binary originals had one.
    """
    h, w = grey.shape
    tilt = 0.0
    if inverted is None:
        grey, tilt = mask_surround(grey)
        inverted = is_inverted(grey)
    if inverted:
        grey = 1.0 - grey
    flat = unguided = flatten(grey)
    if guide is not None:  # where ink may be (0-1), from an earlier look at the image
        flat = flat * guide
    # The ink's brightness: the 3rd brightest pixel (a small digit on a big page is too few
    # pixels for a percentile), which must stand out from the pixel-to-pixel noise.
    contrast = top_value(flat) if flat.size > 20 else 0.0
    if contrast < 0.1 or noise_above(grey, contrast / 8):  # contrast < max(0.1, 8·noise)
        raise ImageError("no digit found: the image has no ink that stands out from the "
                         "background")
    if inverted:
        # Paper in a shadow reflects less light, and so does the ink on it: dividing by
        # the paper's brightness (1 - background) gives both halves of the digit one level.
        flat = flat / np.clip(1.0 - (grey - flat), 0.25, 1.0)
        if guide is not None:
            unguided = unguided / np.clip(1.0 - (grey - unguided), 0.25, 1.0)
        contrast = top_value(flat)
    flat = np.clip(flat / contrast, 0, 1)
    t = otsu(flat)
    strong = flat > max(t, 0.25)
    as_found = flat, strong, t
    # Lines as dark as the ink (or darker than a pencil's): looked for when the ink spans
    # that far and runs into the frame (a digit drawn inside a canvas does not), or, on
    # the sharper look at a small digit (a crop with a margin round it), across 90% of the
    # crop without the guide.
    lines = None
    if min(h, w) >= 48 and strong.any():
        source = flat if guide is None else np.clip(unguided / contrast, 0, 1)
        faint = source > 0.5 * max(t, 0.25)
        if faint.any() and (spans(faint, 0.9) if guide is not None else
                            spans(strong, LONG_LINE) and touches_frame(faint)):
            lines = long_lines(source, max(t, 0.25), margin=guide is not None)
        if lines is None and guide is not None and faint.any():
            lines = lines_past_the_digit(source, max(t, 0.25), guide, strong)
    if lines is not None:
        # Without the lines, the ink sets the level (a pencil is paler than the ruling).
        flat, t, strong = relevel(np.where(lines, 0.0, flat).astype(np.float32), t)
        walls = hanging_walls(strong, lines)
        if walls is not None:
            strong = strong & ~walls
            flat = np.where(dilate3(walls) & ~strong, 0.0, flat).astype(np.float32)
    strong = drop_pale_lines(strong, flat)
    if not strong.any():  # all of it was taken for lines: a tight crop of thick strokes
        flat, strong, t = as_found
    labels, n, window = label8(strong)
    boxes = [window] if n == 1 else find_boxes(labels, window)
    printed = printed_boxes(*glued(strong, labels, n, window, boxes))
    if printed is not None:  # (and their faint fringe: not brought back as the digit's edge)
        strong = strong & ~printed
        flat = np.where(dilate3(printed) & ~strong, 0.0, flat).astype(np.float32)
        labels, n, window = label8(strong)
        boxes = None
    if n >= 3:  # a ring binder's holes, as dark as the ink or darker: not the ink's level
        boxes = find_boxes(labels, window) if boxes is None else boxes
        holes = punch_holes(np.arange(1, n + 1), boxes,
                            np.bincount(labels[strong], minlength=n + 1)[1:], w)
        if holes:
            punched = dilate3(np.isin(labels, holes))
            flat, t, strong = relevel(np.where(punched, 0.0, flat).astype(np.float32), t)
            labels, n, window = label8(strong)
            boxes = None
    if n >= 8 and min(h, w) >= 48:  # many pieces: perhaps ruled lines a tilt broke up
        lined = remove_ruled_lines(flat, strong)
        if lined is not None:
            flat = lined
            strong = flat > max(t, 0.25)
            labels, n, window = label8(strong)
            boxes = None
    if n == 0:
        raise ImageError("no digit found: nothing remains after removing the background")
    peaks = np.zeros(n + 1, np.float32)
    values = flat[strong]  # (the ink's level below, when every piece is kept)
    if n == 1:  # one piece (the common case): it is all of ``strong``, its box the window
        sizes = np.array([values.size])
        peaks[1] = values.max()
        boxes = [window]
        dim = np.zeros(1, bool)
    else:
        ids = labels[strong]  # the pieces' pixels only: the background's are not counted
        sizes = np.bincount(ids, minlength=n + 1)[1:]
        np.maximum.at(peaks, ids, values)
        boxes = find_boxes(labels, window) if boxes is None else boxes
        # A piece's typical level: a finger's shadow beside the digit is as dark as the
        # shadow, its pieces' mean under two thirds of the largest piece's (the ink's).
        means = np.bincount(ids, weights=values, minlength=n + 1)[1:] / sizes
        dim = means < 0.65 * means[int(np.argmax(sizes))]
    peaks = peaks[1:]
    dropped = np.zeros(n + 1, bool)
    dropped[1:] = cast_shadows(strong, labels, sizes, peaks, boxes)
    for _ in range(2):
        keep = np.zeros(n + 1, bool)
        largest = sizes[~dropped[1:]].max()
        for i, (size, peak, box) in enumerate(zip(sizes, peaks, boxes, strict=True), start=1):
            bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
            ruled_line = (bw > 0.6 * w and bh < 0.08 * h) or (bh > 0.6 * h and bw < 0.08 * w)
            # Shadow edges and the corners of a lit page are paler than ink and hug the frame;
            # inside it, a finger's shadow or an empty box's faint line is under half the
            # ink's level (0.35 before: a form's empty boxes, held out, 0.46 -> 0.58).
            on_border = box[0].start == 0 or box[1].start == 0 or box[0].stop == h or \
                box[1].stop == w
            pale = peak < (0.6 if on_border else 0.5) or dim[i - 1]
            if size >= max(0.08 * largest, 4) and not ((ruled_line or pale) and n > 1) \
                    and not dropped[i]:
                keep[i] = True
        frames = frames_and_lines(labels, np.flatnonzero(keep), boxes, sizes)
        if not frames:
            break
        dropped[frames] = True
    keep[stray_pieces(np.flatnonzero(keep), boxes, sizes, h, w)] = False
    keep[bars_beside(labels, np.flatnonzero(keep), boxes, sizes)] = False
    if not keep.any():
        keep[1 + int(np.argmax(sizes))] = True
    if not keep[1:].all():  # (all kept: ``strong`` is already what they cover)
        strong = keep[labels]
        values = flat[strong]
    if fraction(strong) > 0.6:
        raise ImageError("no digit found: the whole image looks like ink (a photo of "
                         "something else, or noise?)")
    # Ink level: the typical brightness of the kept strokes (pencil is paler than a pen).
    level = median(values)
    relative = flat / level  # the coverage, np.clip(relative, 0, 1), is needed at the digit
    # Hysteresis: the weaker edges that touch kept strokes belong to the digit too.
    weak = relative > 0.5  # (the coverage's > 0.5)
    digit = weak | strong
    top, bottom, left, right = bbox(digit)
    # (Weak pixels all next to strong ones cannot make a piece of their own: no labelling.
    # Looked at in the digit's box, which holds all of both.)
    inner = (slice(top, bottom), slice(left, right))
    if (weak[inner] & ~dilate3(strong[inner])).any():
        labels, n, _ = label8(digit)
        attached = np.bincount(labels[strong], minlength=n + 1) > 0
        if not attached[1:].all():
            attached[0] = False
            digit = attached[labels]
            top, bottom, left, right = bbox(digit)
    # One pixel of margin keeps the anti-aliased edge for resampling; the coverage is kept
    # next to the digit only (its 3×3 dilation, which the margin holds).
    window = (slice(max(top - 1, 0), bottom + 1), slice(max(left - 1, 0), right + 1))
    crop = np.clip(relative[window], 0, 1) * dilate3(digit[window])
    return crop.astype(np.float32), (top, bottom, left, right, inverted, tilt)


def relevel(flat: np.ndarray, t: float) -> tuple[np.ndarray, float, np.ndarray]:
    """With lines or holes taken out of ``flat``, the ink sets the level again (a pencil
    is paler than a form's ruling): ``flat`` rescaled, its Otsu threshold, the strong ink."""
    level = top_value(flat)
    if level > 0:
        flat = np.clip(flat / level, 0, 1)
        t = otsu(flat)
    return flat, t, flat > max(t, 0.25)


def remove_ruled_lines(flat: np.ndarray, strong: np.ndarray) -> np.ndarray | None:
    """Ruled or squared paper photographed a little turned: at the working size its thin
    lines break into short pieces that the tests on whole pieces cannot tell from ink.
    Lines are found as rows (or columns), straight at some angle within ±8°, that faint
    or strong pixels cover across most of the frame and that are paler than the ink; on
    them only what is clearly brighter than the line (the ink crossing it) is kept. None
    when there are no such lines."""
    out = None
    for transpose in (False, True):
        f = (out if out is not None else flat)
        f = f.T if transpose else f
        m = f > 0.15  # the lines' faint pixels count too (below the ink's threshold)
        h, w = m.shape
        ys, xs = np.nonzero(m)
        if len(ys) < w:
            continue
        best = None
        for slope in np.tan(np.radians(np.arange(-8.0, 8.5, 1.0))):
            rows = np.round(ys - xs * slope).astype(np.intp)
            lo = int(rows.min())
            profile = np.bincount(rows - lo)
            lines = np.flatnonzero(profile >= 0.5 * w)
            if best is None or len(lines) > len(best[2]):
                best = (slope, lo, lines)
        slope, lo, lines = best
        if len(lines) < 2:
            continue
        yy, xx = np.indices((h, w))
        at = np.round(yy - xx * slope).astype(np.intp) - lo
        on = np.zeros(max(int(at.max()) + 2, int(lines.max()) + 2), bool)
        on[lines] = True
        on[np.clip(lines - 1, 0, None)] |= True
        on[lines + 1] = True
        band = on[np.clip(at, 0, len(on) - 1)] & (at >= 0)
        level = median(f[band & m]) if (band & m).any() else 1.0
        if level > 0.6:  # as strong as the ink: a digit's own bars, not printed lines
            continue
        g = np.where(band & (f < 2.0 * level), 0.0, f).astype(np.float32)
        out = g.T if transpose else g
    return out


LONG_LINE = 0.6  # of the frame's width (height): a ruled line, a margin, a page's edge
LINE_WIDTH, LINE_WIDTH_MIN = 0.12, 6  # the widest a line is: of the frame, in pixels


def long_lines(flat: np.ndarray, cut: float, *, margin: bool = False) -> np.ndarray | None:
    """Ruled lines, squares and a margin as dark as the ink (a notebook photographed in good
    light, a thin ballpoint or a pencil digit): straight rows (or columns) at some angle
    within ±8° that the fainter pixels (``flat`` above half ``cut``: a thin line reduced to
    the working size is strong in places only) cover across LONG_LINE of the frame or
    more, and that run far beyond the rest of the ink (which spans at most
    half their length). Either two or more of them (ruling), or one across 90% of the
    frame that no stroke crosses (a margin, an underline): a digit's bars are single, and a
    4's crosses its upright. Where a stroke crosses a ruled line (ink on both sides of it
    within the line's width), or runs along it (darker than the line), its pixels are
    kept. Returns the lines' pixels, or
    None. ``margin``: the frame holds a margin round the digit (a quarter of its size
    each side at least), so that no stroke runs across 90% of it: lines that long are
    lines, whatever else is left."""

    strong = flat > cut
    faint = flat > 0.5 * cut
    found = []  # per direction: the lines' band, their number, the longest, the frame's length
    for m in (faint, faint.T):
        h, w = m.shape
        ys, xs = np.nonzero(m)
        best, lows, rows, profile, shifts = steepest_pairs(ys, xs, w, m)
        lo = int(lows[best])
        # (Faint lines count too: a ruling's 1-px lines, reduced, are strong or faint by
        # where they fall between the working size's rows. Once the strokes that run along
        # a line stay, a faint line can go: a dark-ruled notebook 0.948 -> 0.993.)
        core = profile >= (0.9 if margin else LONG_LINE) * w
        if not core.any():
            found.append(None)
            continue
        rows_in = np.zeros(len(core) + 1, bool)  # (pair i is rows i and i + 1)
        rows_in[:-1] = core
        rows_in[1:] |= core
        on_core = rows_in[rows]
        if not margin and not (xs[on_core].min() <= 1 or xs[on_core].max() >= w - 2):
            found.append(None)  # printed lines run into the frame; a box drawn round the
            continue  # digit, or its own bars, need not
        # A line's width: the rows beside its core that still hold a good part of it.
        grown = core.copy()  # (core's dilation by a pixel each way)
        grown[1:] |= core[:-1]
        grown[:-1] |= core[1:]
        paired = core | (grown & (profile >= 0.4 * w))
        on = np.zeros(len(paired) + 1, bool)  # (pair i is rows i and i + 1)
        on[:-1] = paired
        on[1:] |= paired
        ends = np.zeros(len(on) + 1, bool)  # (where ``on`` starts or stops)
        ends[:-1] = on
        ends[1:] ^= on
        edges = np.flatnonzero(ends)
        # A line is thin: rows that wide are a bold digit's strokes filling a tight crop
        # (a 0's arcs, row after row across most of the frame), not a ruling.
        thick = edges[1::2] - edges[::2] > max(LINE_WIDTH_MIN, LINE_WIDTH * h)
        if thick.any():
            for start, stop in zip(edges[::2][thick], edges[1::2][thick], strict=True):
                on[start:stop] = False
            edges = np.concatenate([edges[::2][~thick], edges[1::2][~thick]])
            edges.sort()
            if not edges.size:
                found.append(None)
                continue
        band = line_band(on, h, w, best, lo, shifts)
        found.append((band, len(edges) // 2, int(profile.max()), w,
                      int((edges[1::2] - edges[::2]).max())))
    lines = np.zeros(strong.shape, bool)
    for k, m in enumerate((strong, strong.T)):
        if found[k] is None:
            continue
        band, count, longest, w, width = found[k]
        other = found[1 - k]
        rest = m & ~band
        if other is not None and (other[1] >= 2 or other[2] >= 0.9 * other[3]):
            # The other direction's ruling or margin (and its pixels' fringe) is not the digit.
            rest &= ~dilate3(other[0].T)
        # A stroke crossing a line: ink above and below it, in the same column, within the
        # line's width of the band.
        above, below = np.zeros_like(rest), np.zeros_like(rest)
        for d in range(1, width + 2):
            above[d:] |= rest[:-d]
            below[:-d] |= rest[d:]
        crossed = band & above & below
        if not margin:
            labels, n = label(rest, SQUARE)
            sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
            keep = np.zeros(n + 1, bool)
            keep[1:] = sizes >= max(4, 0.1 * sizes.max(initial=0))  # not specks
            if not keep.any():
                continue  # nothing but the "lines" and specks: perhaps the digit itself
            # (How far the rest spans, by its larger pieces: the specks a pale margin breaks
            # into, far from the digit, do not make it span the page.)
            keep[1:] &= sizes >= 0.25 * sizes.max()
            cols = np.flatnonzero(keep[labels].any(0))
            if cols[-1] - cols[0] + 1 > 0.5 * longest:
                continue  # the rest spans as far: a digit's bars
            if count < 2 and (longest < 0.9 * w or crossed.any()):
                continue
        # Where a stroke runs along a line, it is darker than the line (unless the ink is
        # as dark as the ruling): the band's pixels clearly above the line's own level
        # (its median: the band is mostly line) and its spread stay.
        f = flat.T if k else flat
        on_line = f[band & (faint.T if k else faint)]
        if on_line.size:
            level = median(on_line)
            spread = median(np.abs(on_line - level))
            crossed |= band & (f > max(level + 4 * spread + 0.05, 0.5 * (1.0 + level)))
        view = lines.T if k else lines
        view |= band & ~crossed
    return lines if lines.any() else None


def line_band(on: np.ndarray, h: int, w: int, best: int, lo: int,
                shifts: np.ndarray | None) -> np.ndarray:
    """The pixels of an h×w frame whose row at LINE_SLOPES[best] (round(y - x·slope), less
    ``lo``) is one of ``on``'s. With the slopes' row shifts (see :func:`shift_layout`): a
    column's pixels are ``on`` shifted by the column's shift, gathered from ``on`` padded
    with False on both sides."""
    if shifts is None:
        slope = float(LINE_SLOPES[best])
        at = np.round(np.arange(h)[:, None] - np.arange(w)[None, :] * slope).astype(np.intp) - lo
        return on[np.clip(at, 0, len(on) - 1)] & (at >= 0) & (at < len(on))
    shift = shifts[best] - lo  # row = y + shift[x]
    low, high = int(shift.min()), int(shift.max())
    before = max(0, -low)
    padded = np.zeros(before + max(len(on), h + high) + 1, bool)
    padded[before:before + len(on)] = on
    return padded[np.arange(h)[:, None] + (shift + before)[None, :]]


def lines_past_the_digit(source: np.ndarray, cut: float, guide: np.ndarray,
                         strong: np.ndarray) -> np.ndarray | None:
    """On the sharper look at a small digit: printed lines (the walls of a form's box
    beside the digit) that run right across the region the first look found the digit in
    (its 5×5 dilation), and so beyond the digit, when no line crosses the whole crop.
    long_lines looks for them in that region as in a frame with a margin round the digit;
    they must be under half the ink there (a 1 the first look saw whole spans its region
    too, and is nearly all of it)."""
    top, bottom, left, right = bbox(guide > 0)
    if min(bottom - top, right - left) < 16:
        return None
    found = long_lines(source[top:bottom, left:right], cut, margin=True)
    if found is None:
        return None
    lines = np.zeros(source.shape, bool)
    lines[top:bottom, left:right] = found
    ink = np.count_nonzero(strong)
    return lines if np.count_nonzero(lines & strong) < 0.5 * ink else None


def hanging_walls(strong: np.ndarray, lines: np.ndarray) -> np.ndarray | None:
    """A form's row of boxes running out of the photo: its two lines go as long lines,
    and the walls between them stay, thin straight bars standing from one line to the
    other beside the digit (held out: most of the boxes still missed). Two or more such
    bars, as thin as a printed line, go; a lone one may be a 1. Returns them, or None."""
    labels, n, window = label8(strong)
    if n < 3:
        return None
    near = dilate3(dilate3(lines))  # within two pixels of a line
    found = []
    for i, box in enumerate(find_boxes(labels, window), start=1):
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        if bh < 8 or bw > max(3, 0.15 * bh):
            continue
        piece = labels[box] == i
        if not ((piece[0] & near[box][0]).any() and (piece[-1] & near[box][-1]).any()):
            continue
        ys, xs = np.nonzero(piece)
        minor, major = spreads(ys, xs)
        if major > 0 and minor < 0.01 * major:
            found.append(i)
    if len(found) < 2 or len(found) == n:
        return None
    return np.isin(labels, found)


def spreads(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float]:
    """The variances of a piece's pixels (at ``ys``, ``xs``) across and along it: a
    straight line's first is under a hundredth of its second, its length √(12·second)."""
    minor, major = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
    return float(minor), float(major)


LINE_SLOPES = np.tan(np.radians(np.arange(-8.0, 8.5, 1.0)))  # long_lines' angles, 1° apart


def steepest_line(ys: np.ndarray, xs: np.ndarray, w: int
                  ) -> tuple[float, int, np.ndarray, np.ndarray]:
    """Of LINE_SLOPES, the one along which the pixels at (ys, xs) (some, in a frame ``w``
    wide) make the longest line: the slope, the lowest row at it (pixel (y, x) lies on row
    round(y - x·slope)), each pixel's row from that lowest one, and how many columns each
    pair of rows (i, i + 1) from there covers (a line between two of the 1° steps, or two
    pixels wide, runs along two rows, half of it in each). The first such slope when
    several tie. All slopes at once: one array op each instead of 17."""
    best, lows, rows, pairs, _ = steepest_pairs(ys, xs, w)
    return float(LINE_SLOPES[best]), int(lows[best]), rows, pairs


@functools.lru_cache(maxsize=64)
def shift_layout(w: int) -> tuple[np.ndarray, ...] | None:
    """For a frame ``w`` wide: per slope and column x, the integer n with round(y - x·slope)
    == y + n for every row y (the products and differences in float64, as
    :func:`steepest_line`'s), or None when some x·slope lies too near a half-integer for
    that to be sure (a row's shift could then depend on the row, by rounding). Then the
    runs of columns that share a shift, all slopes' in a row: each run's first column
    followed, after a slope's last, by ``w`` (for ``np.add.reduceat``); which of those
    are runs; each slope's first run; each run's slope and shift."""
    products = np.arange(w) * LINE_SLOPES[:, None]
    fractions = products - np.floor(products)
    if w == 0 or np.abs(fractions - 0.5).min() < 1e-9:
        return None
    shifts = np.round(-products).astype(np.intp)
    n = len(LINE_SLOPES)
    starts = np.ones((n, w + 1), bool)
    starts[:, 1:w] = shifts[:, 1:] != shifts[:, :-1]
    slope, column = np.nonzero(starts)
    run = column < w
    heads = np.searchsorted(slope[run], np.arange(n))
    slope = slope[run]
    layout = shifts, column, run, heads, slope, shifts[slope, column[run]]
    for part in layout:
        part.flags.writeable = False
    return layout


def steepest_pairs(ys: np.ndarray, xs: np.ndarray, w: int, mask: np.ndarray | None = None
                    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`steepest_line`'s numbers: the best slope's index, every slope's lowest row,
    the best slope's rows and pair profile, and the row shifts (None when unsure, see
    :func:`shift_layout`). ``mask``: the pixels' image, if at hand. A pair of rows covers
    the columns where either row holds a pixel: where the image's column holds one in
    one of the two rows the pair's shifted back to. Few pixels: each pixel's row at each
    slope, the rows' and the vertical pairs' pixels counted (a pair covers the columns of
    its two rows less those where both hold one). Many: per run of columns sharing a
    shift, how many of its columns each pair of the image's rows covers, added up along
    each slope's shifted runs (there are far fewer runs than pixels)."""
    layout = shift_layout(w)
    if layout is None:
        return steepest_pairs_dense(ys, xs, w)
    shifts = layout[0]
    n = len(LINE_SLOPES)
    if len(ys) <= 1200:
        rows = ys[None, :] + shifts[:, xs]
        lows = rows.min(axis=1)
        rows -= lows[:, None]
        highs = rows.max(axis=1)
        size = max(int(highs.max()) + 1, 2)  # (at least two rows: a lone row is one pair)
        rows += (np.arange(n) * size)[:, None]  # each slope's rows in a block of its own
        counts = np.bincount(rows.ravel(), minlength=n * size).reshape(n, size)
        below = np.zeros((int(ys.max()) + 2, w), bool)
        below[ys, xs] = True
        below = below[ys + 1, xs]  # pixels whose neighbour below is set too
        both = np.bincount(rows[:, below].ravel(), minlength=n * size).reshape(n, size)
        pairs = counts[:, :-1] + counts[:, 1:] - both[:, :-1]
        best = int(np.argmax(pairs.max(axis=1)))
        return (best, lows, rows[best] - best * size,
                pairs[best, :max(int(highs[best]) + 1, 2) - 1], shifts)
    if mask is None:
        mask = np.zeros((int(ys.max()) + 1, w), bool)
        mask[ys, xs] = True
    pairs, lows, highs = run_pairs(mask, layout)
    best = int(np.argmax(pairs.max(axis=1)))
    return (best, lows, ys + shifts[best, xs] - lows[best],
            pairs[best, :max(int(highs[best]) + 1, 2) - 1], shifts)


def run_pairs(mask: np.ndarray, layout: tuple[np.ndarray, ...]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slope, how many columns each pair of rows covers (slopes × rows, the rows from
    the slope's lowest, as many as the widest slope's less one), the lowest rows and the
    highest (from the lowest), by :func:`shift_layout`'s runs of columns."""
    from numpy.lib.stride_tricks import as_strided

    shifts, column, run, heads, slope, shift = layout
    h, w = mask.shape
    occupied = mask.any(axis=0)
    top = mask.argmax(axis=0)[occupied]
    bottom = h - 1 - mask[::-1].argmax(axis=0)[occupied]
    moved = shifts[:, occupied]
    lows = (top + moved).min(axis=1)
    highs = (bottom + moved).max(axis=1) - lows
    size = max(int(highs.max()) + 1, 2)
    # paired[x, j]: whether column x holds a pixel in row j - 1 or j (a zero column after)
    paired = np.zeros((w + 1, h + 1), np.int16)
    paired[:-1, :-1] = mask.T
    paired[:-1, 1:] |= mask.T
    runs = np.add.reduceat(paired, column, axis=0)[run]  # (runs, h + 1)
    # A slope's pair i is the image's rows j - 1, j with j = i + first in each run.
    first = lows[slope] - shift + 1
    before = max(0, -int(first.min()))
    width = before + h + 1 + max(0, int(first.max()) + size - 1 - (h + 1))
    padded = np.zeros((len(slope), width), np.int16)
    padded[:, before:before + h + 1] = runs
    flat = padded.ravel()
    step = flat.strides[0]
    windows = as_strided(flat, (flat.size - size + 2, size - 1), (step, step),
                         writeable=False)
    taken = windows[np.arange(len(slope)) * width + before + first]
    return np.add.reduceat(taken, heads, axis=0, dtype=np.intp), lows, highs


def steepest_pairs_dense(ys: np.ndarray, xs: np.ndarray, w: int
                          ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, None]:
    """:func:`steepest_pairs` by rounding every pixel's row at every slope and marking
    the rows' columns in a slopes × rows × columns array (when the shifts are unsure)."""
    rows = np.round(ys[None, :] - xs[None, :] * LINE_SLOPES[:, None]).astype(np.intp)
    lows = rows.min(axis=1)
    rows -= lows[:, None]
    highs = rows.max(axis=1)
    covered = np.zeros((len(LINE_SLOPES), max(int(highs.max()) + 1, 2), w), bool)
    covered[np.arange(len(LINE_SLOPES))[:, None], rows, xs[None, :]] = True
    # (A slope's rows past its highest are empty: pairs there cover no more than the
    # pair before them, and are cut off below.)
    pairs = np.count_nonzero(covered[:, :-1] | covered[:, 1:], axis=2)
    best = int(np.argmax(pairs.max(axis=1)))
    return best, lows, rows[best], pairs[best, :max(int(highs[best]) + 1, 2) - 1], None


def drop_pale_lines(strong: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Printed lines (ruled paper, a margin) that the digit touches or crosses: paler than
    the ink, straight, running into the frame. Joined to the digit (and to each other by a
    margin line) they make one piece that the tests on whole pieces cannot drop."""
    from scipy import ndimage

    h, w = strong.shape
    if min(h, w) < 48 or not touches_frame(strong):
        return strong
    labels, n = label(strong, SQUARE)
    out = strong.copy()
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if not ((box[1].stop - box[1].start > 0.6 * w or box[0].stop - box[0].start > 0.6 * h)
                and (box[0].start == 0 or box[1].start == 0 or box[0].stop == h
                     or box[1].stop == w)):
            continue
        piece = labels[box] == i
        if n > 1 and is_grid(piece, h, w):  # ruled lines joined by a margin, apart from the digit
            out[box][piece] = False
            continue
        values = flat[box][piece]
        pale = piece & (flat[box] < 0.5 * float(np.percentile(values, 90)))
        pale_labels, m = label(pale, SQUARE)
        for j, sub in enumerate(ndimage.find_objects(pale_labels), start=1):
            ys, xs = np.nonzero(pale_labels[sub] == j)
            if len(ys) < 8:
                continue
            ys, xs = ys + sub[0].start + box[0].start, xs + sub[1].start + box[1].start
            if not (ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1):
                continue
            minor, major = spreads(ys, xs)
            if major > 0 and minor < 0.01 * major and np.sqrt(12 * major) > 0.25 * min(h, w):
                out[ys, xs] = False
    return out


def printed_boxes(labels: np.ndarray, boxes: list, parts: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """A form's row (or grid) of printed boxes, the digit written in one of them (where it
    touches a box, boxes and digit are one piece, kept or dropped whole), or one box round
    it. A piece's thin lines are its rows (columns) that are nearly full, in bands a few
    pixels wide. Boxes: two or more lines one way and three or more the other, making half
    of the piece or more; or one box, its lines the piece's outermost rows and columns,
    with ink in its middle. The lines go when what is left is a digit's worth (a tenth of
    the piece); a piece of nothing but lines goes whole when other ink lies inside it.
    ``labels`` numbers the pieces, ``boxes`` are their bounding boxes; ``parts``, where
    pieces a pixel apart were taken as one (:func:`glued`), numbers the pieces as they
    were: one of them mostly off the lines (a thin digit a pixel from its box) is ink
    beside the lines, not part of them. Returns the pixels to drop, or None."""
    out = None
    for i, box in enumerate(boxes, start=1):
        if min(box[0].stop - box[0].start, box[1].stop - box[1].start) < 12:
            continue
        original = labels[box] == i
        ph0, pw = original.shape
        size = np.count_nonzero(original)
        # (Sheared, it is at most 2·reach rows taller: dense at every slope, skipped now.)
        if size > 0.4 * (ph0 + 2 * shear_shifts(pw)[0]) * pw:
            continue
        # Looked at with its rows levelled (a form photographed a little turned): its
        # walls are then as tall as the sheared piece (they fell short of the tilted one).
        found = level_shift_pixels(original)
        if found is None:  # no row band covers the width: no lines across it
            continue
        shift, ys, xs = found
        padded, top = sheared_columns(ys, xs, shift, pw)
        piece = padded[1:-1]
        ph = piece.shape[0]
        if size > 0.4 * ph * pw:  # dense: a thick digit's blob, not thin lines round space
            continue
        rows = thin_lines_padded(padded)
        nr = runs(rows)
        if nr < 2:
            continue
        # The walls: across the piece, or, in a row of boxes (wider than tall: a digit's
        # piece seldom is), between its first line and its last when those hold most of
        # it (a digit may stand out of its box a little; the corners, at a pixel or two,
        # often break; a 9's loop is not a box, nor a narrow 8's sides).
        lined = np.flatnonzero(rows)
        a = lined[0] + int(np.argmin(rows[lined[0]:]))
        b = lined[-1] - int(np.argmin(rows[lined[-1]::-1]))
        col_on = level_lines(piece.T)[0].T
        if pw >= 1.5 * ph and b - a + 1 >= 0.6 * ph:
            col_on[a:b + 1] |= level_lines(piece[a:b + 1].T)[0].T
        cols = col_on.any(0)
        nc = runs(cols)
        if nc < 2:
            continue
        on = (piece & rows[:, None]) | col_on
        # Or a single box round the digit: its lines the piece's outermost rows and columns,
        # with ink in the middle of it (a square 0 is all lines and corners).
        framed = rows[:2].any() and rows[-2:].any() and cols[:2].any() and cols[-2:].any() \
            and np.count_nonzero(piece[ph // 4:ph - ph // 4, pw // 4:pw - pw // 4]) >= \
            0.05 * size
        if not framed and (max(nr, nc) < 3 or np.count_nonzero(on) < 0.5 * size):
            continue
        if np.count_nonzero(piece & ~on) < 0.1 * size:
            beside = None
            if parts is not None:
                own = parts[box]
                counts = np.bincount(own[original], minlength=int(own.max()) + 1)
                lined = np.bincount(own[original & unsheared(on, shift, top, ph0)],
                                    minlength=len(counts))
                beside = (counts > 0) & (lined < 0.5 * counts)
            if beside is not None and beside.any():
                on = piece & ~sheared_like(beside[own], shift, top, piece.shape)
            elif np.count_nonzero((labels[box] > 0) & ~original) < 0.05 * size:
                continue
            else:
                on = piece
        if out is None:
            out = np.zeros(labels.shape, bool)
        out[box] |= unsheared(on, shift, top, ph0) & original
    return out


def glued(strong: np.ndarray, labels: np.ndarray, n: int, window: tuple[slice, slice],
          boxes: list) -> tuple[np.ndarray, list, np.ndarray | None]:
    """The pieces of ``strong`` with those a pixel apart taken as one, their boxes, and
    the pieces as they were (None when none were joined): a form's thin printed lines,
    reduced to a pixel or two, break at the corners and where they fade (held out: 2 in
    3 of the boxes missed were in pieces)."""
    if n < 2:
        return labels, boxes, None
    together, m, _ = label8(dilate3(dilate3(strong)))
    if m == n:
        return labels, boxes, None
    together = np.where(strong, together, 0)
    return together, find_boxes(together, window), labels


def level_shift(piece: np.ndarray) -> np.ndarray | None:
    """How far to move each column of a piece down so that a line a few degrees off level
    (up to about 4°: a form photographed not quite square) lies in one row: the shear that
    packs the most ink into one row. None when no row band as tall as the largest drift
    covers the piece's width: no line at any of these slopes (a digit's own piece, often;
    two lines a box apart can share one band)."""
    found = level_shift_pixels(piece)
    return None if found is None else found[0]


@functools.lru_cache(maxsize=512)
def shear_shifts(pw: int) -> tuple[int, np.ndarray, np.ndarray]:
    """level_shift's candidate shifts for a piece ``pw`` wide: (reach, shifts (one row per
    slope), the same transposed and contiguous); read-only (cached)."""
    reach = int(np.ceil(0.07 * pw))  # (at least one row)
    x = np.arange(pw)
    slopes = np.arange(-reach, reach + 1)
    shifts = np.round(slopes[:, None] * x[None, :] / max(pw - 1, 1)).astype(np.intp) + reach
    across = np.ascontiguousarray(shifts.T)
    shifts.flags.writeable = across.flags.writeable = False
    return reach, shifts, across


def level_shift_pixels(piece: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`level_shift`, and the piece's pixels (``np.nonzero``) it looked at."""
    ph, pw = piece.shape
    reach, shifts, across = shear_shifts(pw)
    # Columns with ink within reach + 1 rows of each row (a maximum filter of the rows,
    # clipped at the piece's edges), by the columns' running counts.
    k = reach + 1
    total = np.zeros((ph + 2 * k + 1, pw), np.int32)
    np.cumsum(piece, axis=0, dtype=np.int32, out=total[k + 1:k + 1 + ph])
    total[k + 1 + ph:] = total[k + ph]
    if not (np.count_nonzero(total[2 * k + 1:] - total[:ph], axis=1) >= 0.85 * pw).any():
        return None
    ys, xs = np.nonzero(piece)
    height = ph + 2 * reach
    # Every slope's row counts in one bincount: slope j's rows are at j·height onwards.
    at = across + height * np.arange(len(across[0]))
    counts = np.bincount((at[xs] + ys[:, None]).ravel(), minlength=at.shape[1] * height)
    return shifts[int(counts.reshape(-1, height).max(1).argmax())], ys, xs


def sheared(piece: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, int]:
    """The piece with column x moved down by ``shift[x]``, cropped to its rows, and the
    first row kept (for :func:`unsheared`)."""
    ys, xs = np.nonzero(piece)
    out, top = sheared_columns(ys, xs, shift, piece.shape[1])
    return out[1:-1], top


def sheared_columns(ys: np.ndarray, xs: np.ndarray, shift: np.ndarray, pw: int
                  ) -> tuple[np.ndarray, int]:
    """:func:`sheared` of the piece whose pixels are (ys, xs), ``pw`` wide, with a row of
    background above and below it (for :func:`thin_lines_padded`)."""
    ys = ys + shift[xs]
    top = int(ys.min())
    ys -= top - 1
    out = np.zeros((int(ys.max()) + 2, pw), bool)
    out[ys, xs] = True
    return out, top


def sheared_like(mask: np.ndarray, shift: np.ndarray, top: int, shape: tuple[int, int]
                 ) -> np.ndarray:
    """A mask in the piece's frame moved as :func:`sheared` moved the piece (``shape``
    its result's)."""
    ys, xs = np.nonzero(mask)
    ys = ys + shift[xs] - top
    out = np.zeros(shape, bool)
    inside = (ys >= 0) & (ys < shape[0])
    out[ys[inside], xs[inside]] = True
    return out


def unsheared(mask: np.ndarray, shift: np.ndarray, top: int, ph: int) -> np.ndarray:
    """A mask in :func:`sheared`'s frame back in the piece's (``ph`` rows): true where
    the piece's pixel was moved onto a true pixel."""
    h, w = mask.shape
    x = np.arange(w)
    rows = np.arange(ph)[:, None] + shift[None, :] - top
    inside = (rows >= 0) & (rows < h)
    return np.where(inside, mask[np.clip(rows, 0, h - 1), x[None, :]], False)


def level_lines(piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`thin_lines` of a piece whose lines may be a few degrees off level: found in
    the piece sheared level (:func:`level_shift`) and moved back. Returns the piece's
    pixels on the lines and which of its rows hold some of them."""
    found = level_shift_pixels(piece)
    if found is None:
        return np.zeros(piece.shape, bool), np.zeros(piece.shape[0], bool)
    shift, ys, xs = found
    padded, top = sheared_columns(ys, xs, shift, piece.shape[1])
    flat = padded[1:-1]
    on = unsheared(flat & thin_lines_padded(padded)[:, None], shift, top, piece.shape[0]) & piece
    return on, on.any(1)


def thin_lines(piece: np.ndarray) -> np.ndarray:
    """Which rows of a piece are on a thin line: three neighbouring rows together cover
    0.85 of its width or more (a line a little off level still does), in a band at most
    five rows wide (a blob's rows are not lines)."""
    padded = np.zeros((piece.shape[0] + 2, piece.shape[1]), bool)
    padded[1:-1] = piece
    return thin_lines_padded(padded)


def thin_lines_padded(padded: np.ndarray) -> np.ndarray:
    """:func:`thin_lines` of ``padded[1:-1]`` (its first and last rows background)."""
    covered = np.count_nonzero(padded[:-2] | padded[1:-1] | padded[2:], axis=1)
    full = covered >= 0.85 * padded.shape[1]
    if not full.any():
        return full
    edges = np.zeros(len(full) + 2, bool)
    edges[1:-1] = full
    edges = np.flatnonzero(edges[1:] != edges[:-1])
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if stop - start > 5:
            full[start:stop] = False
    return full


def runs(flags: np.ndarray) -> int:
    """How many runs of True a boolean row holds."""
    if flags.dtype != bool or flags.ndim != 1:
        return int(np.count_nonzero(np.diff(np.r_[0, flags.astype(np.int8)]) == 1))
    if not flags.size:
        return 0
    return int(flags[0]) + int(np.count_nonzero(flags[1:] > flags[:-1]))  # (its starts)


def is_grid(piece: np.ndarray, h: int, w: int) -> bool:
    """A piece made of two or more straight rows or columns running across most of the
    (h×w) frame and little else: ruled lines, a margin, squares."""
    from scipy import ndimage

    # Counted over three rows (columns): a line a little off level still adds up.
    rows = ndimage.convolve1d(piece.sum(1), np.ones(3, np.intp), mode="constant") >= 0.6 * w
    cols = ndimage.convolve1d(piece.sum(0), np.ones(3, np.intp), mode="constant") >= 0.6 * h
    groups = runs(rows) + runs(cols)
    on_lines = piece & (rows[:, None] | cols[None, :])
    return groups >= 2 and on_lines.sum() >= 0.9 * piece.sum()


def stray_pieces(kept: np.ndarray, boxes: list, sizes: np.ndarray, h: int, w: int
                  ) -> list[int]:
    """Small kept pieces far from the main piece: at the frame, the corner of a shadow's
    wedge or of the page; inside it, a screenshot's battery icon or clock, a mark on the
    paper. Not a part of the digit, which keeps its parts together."""
    if len(kept) < 2:
        return []
    main = int(kept[np.argmax(sizes[kept - 1])])
    mb = boxes[main - 1]
    main_height = mb[0].stop - mb[0].start
    side = max(main_height, mb[1].stop - mb[1].start)
    out = []
    for i in kept:
        box = boxes[i - 1]
        rows = (box[0].start == 0) + (box[0].stop == h)
        cols = (box[1].start == 0) + (box[1].stop == w)
        # In a corner of the frame it may be as large as the digit; on one side, smaller;
        # inside the frame, a quarter of the main piece at most (a digit in pieces, a
        # faint pencil's, has pieces of a size, and close together); a thin bar far away
        # (a phone screenshot's home indicator, a toolbar's edge) or a line of text far lower
        # than the digit, as large as the digit.
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        bar = min(bh, bw) <= max(2, 0.15 * max(bh, bw))
        low = bh <= 0.4 * main_height and bw >= bh  # text: a notes app's title above a 1
        limit = 1.0 if bar or low or (rows and cols) else 0.6 if rows or cols else 0.25
        gap = max(box[0].start - mb[0].stop, mb[0].start - box[0].stop,
                  box[1].start - mb[1].stop, mb[1].start - box[1].stop)
        if i != main and sizes[i - 1] < limit * sizes[main - 1] and gap > 0.5 * side:
            out.append(int(i))
    return out


def against_the_rest(kept: np.ndarray, boxes: list):
    """For each kept piece i (when there are two or more): i, the other kept pieces, and
    (top, bottom, left, right) of their bounding boxes together (``boxes[i - 1]`` is
    piece i's)."""
    if len(kept) < 2:
        return
    for i in kept:
        others = [j for j in kept if j != i]
        rest = [boxes[j - 1] for j in others]
        yield i, others, (min(b[0].start for b in rest), max(b[0].stop for b in rest),
                          min(b[1].start for b in rest), max(b[1].stop for b in rest))


def bars_beside(labels: np.ndarray, kept: np.ndarray, boxes: list, sizes: np.ndarray
                ) -> list[int]:
    """A long straight bar beside the digit: a pen or pencil lying on the page, a ruler's
    edge. It is straight (its pixels' spread across it 0.2 of that along it at most) and
    half as wide again as the digit's strokes at least (the body of a pen, not a stroke),
    clear of the rest of the ink (side by side with it, not above or below: a 7's broken
    stem is below its bar), longer than the rest by half and beyond it at one end at least,
    and the rest is the size of a digit (a quarter of the bar's length at least: a 1 beside
    a speck keeps its 1)."""
    out = []
    for i, others, (top, bottom, left, right) in against_the_rest(kept, boxes):
        box = boxes[i - 1]
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        if bh >= bw:  # upright: beside the rest to its left or right, beyond it up and down
            length, span = bh, bottom - top
            gap = max(box[1].start - right, left - box[1].stop)
            ends = (top - box[0].start, box[0].stop - bottom)
        else:
            length, span = bw, right - left
            gap = max(box[0].start - bottom, top - box[0].stop)
            ends = (left - box[1].start, box[1].stop - right)
        extent = max(bottom - top, right - left)
        if not 0.25 * length <= extent <= length / 1.5 or gap < 0.05 * length or \
                max(ends) < 0.1 * span:
            continue
        ys, xs = np.nonzero(labels[box] == i)
        if ys.size < 3:
            continue
        minor, major = spreads(ys, xs)
        if minor > 0.04 * major:  # (variances: 0.2 in the spread's own units)
            continue
        # And wider than the digit's strokes (a pen's body, not a stroke of the pen's:
        # the upright of a 4 or a 1 drawn apart from the rest is as wide as the rest).
        width = sizes[i - 1] / np.sqrt(12 * major)  # (area / length, a bar's length)
        strokes = np.isin(labels, others)
        outline = np.count_nonzero(strokes & ~erode3(strokes))
        if width >= 1.5 * 2 * np.count_nonzero(strokes) / max(outline, 1):
            out.append(int(i))
    return out


def punch_holes(pieces: np.ndarray, boxes: list, sizes: np.ndarray, w: int) -> list[int]:
    """A ring binder's holes on a scanned page: two or more solid round dots of a size,
    one above the other near the left or right edge, and other ink besides. A small digit
    on the page is no larger than they are, so they must go before the main piece is
    chosen (held out: 30 of 78 such scans were read as the dots)."""
    if len(pieces) < 3:
        return []
    dots = []
    for i in pieces:
        box = boxes[i - 1]
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        centre = (box[1].start + box[1].stop) / 2
        if (0.7 * bh <= bw <= 1.4 * bh and sizes[i - 1] >= 0.6 * bh * bw
                and min(centre, w - centre) < 0.15 * w and max(bh, bw) < 0.1 * w):
            dots.append(int(i))
    holes = []
    for i in dots:
        bi = boxes[i - 1]
        ci = (bi[1].start + bi[1].stop) / 2
        side = max(bi[0].stop - bi[0].start, bi[1].stop - bi[1].start)
        for j in dots:
            bj = boxes[j - 1]
            cj = (bj[1].start + bj[1].stop) / 2
            apart = max(bj[0].start - bi[0].stop, bi[0].start - bj[0].stop)
            if j != i and abs(ci - cj) <= side and 0.5 <= sizes[j - 1] / sizes[i - 1] <= 2 \
                    and apart > 2 * side:
                holes.append(i)
                break
    return holes if len(holes) < len(pieces) else []


def cast_shadows(strong: np.ndarray, labels: np.ndarray, sizes: np.ndarray,
                 peaks: np.ndarray, boxes: list) -> np.ndarray:
    """Pieces that are a shadow, not ink: they run into the frame and are either far wider
    than the strokes of the most ink-like piece clear of the frame (a solid wedge) or a
    long straight line (a hard edge)."""
    h, w = labels.shape
    n = len(sizes)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    on_border = np.array([b[0].start == 0 or b[1].start == 0 or b[0].stop == h or
                          b[1].stop == w for b in boxes])
    inner = ~on_border & (sizes >= 4)
    if not inner.any() or not on_border.any():
        return out
    outline = np.bincount(labels[strong & ~erode3(strong)], minlength=n + 1)[1:]
    widths = 2.0 * sizes / np.maximum(outline, 1) + 1.0
    ink = int(np.flatnonzero(inner)[np.argmax(peaks[inner])])
    out = on_border & (widths > max(2.5 * widths[ink], 5.0))
    # A hard shadow's edge left as a thin line: straight, long, running into the frame.
    for i in np.flatnonzero(on_border & ~out & (sizes >= 10)):
        ys, xs = np.nonzero(labels[boxes[i]] == i + 1)
        minor, major = spreads(ys, xs)
        straight = major > 0 and minor < 0.01 * major
        if straight and np.sqrt(12 * major) > 0.5 * min(h, w) and \
                sizes[~out].sum() - sizes[i] >= 0.3 * sizes[i]:
            out[i] = True
    return out


def frames_and_lines(labels: np.ndarray, kept: np.ndarray, boxes: list, sizes: np.ndarray
                     ) -> list[int]:
    """Kept pieces that are a box drawn around the digit or a straight line under it (an
    underline, a form's field): not part of the digit when something else is there."""
    out = []
    for i, others, (_, bottom, left, right) in against_the_rest(kept, boxes):
        box = boxes[i - 1]
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        # The pieces it encloses, with a gap (a 7's bar is not inside the 7): all of them,
        # or, on a form, the digit in its box, the form's label and other boxes outside.
        inside = [j for j in others if box[0].start < boxes[j - 1][0].start and
                  boxes[j - 1][0].stop < box[0].stop and box[1].start < boxes[j - 1][1].start
                  and boxes[j - 1][1].stop < box[1].stop]
        held = sum(sizes[j - 1] for j in inside)
        # (What it encloses is a digit's worth of ink, and spans a third of it one way or
        # the other: a speck inside a thin digit's arc does not make the digit a frame.)
        if inside and sizes[i - 1] < 0.35 * bh * bw and held >= 0.15 * sizes[i - 1] and \
                (max(boxes[j - 1][0].stop for j in inside) -
                 min(boxes[j - 1][0].start for j in inside) >= bh / 3 or
                 max(boxes[j - 1][1].stop for j in inside) -
                 min(boxes[j - 1][1].start for j in inside) >= bw / 3):
            out += [int(i)] + [int(j) for j in others if j not in inside]
            continue
        ys, xs = np.nonzero(labels[box] == i)
        if len(ys) < 8:
            continue
        minor, major = spreads(ys, xs)
        if major <= 0 or minor > 0.01 * major:  # not a straight line (width < length / 10)
            continue
        # Only below the rest: a line above or to the side may be a 5's or 7's bar, a 4's
        # upright or a 1 beside its flag.
        below = box[0].start >= bottom
        if below and np.sqrt(12 * major) > 0.6 * (right - left) and \
                sizes[i - 1] < sum(sizes[j - 1] for j in others):
            out.append(int(i))
    return sorted(set(out)) if len(set(out)) < len(kept) else []


def noise_above(grey: np.ndarray, limit: float) -> bool:
    """Whether the pixel noise's standard deviation, the lower of the two directions'
    estimates (:func:`noise_levels`), is above ``limit``; the second direction is looked
    at only when the first one's noise is above the limit too."""
    if not np.isfinite(limit):
        return noise_levels_above(grey, limit)
    # A level is kth's bin i over 1023 and 0.453: the highest bin at most ``limit`` (a
    # step or two from its estimate) lets a count of the differences in the bins up to it
    # answer without sorting them.
    def at_most(i: int) -> bool:
        return min(i, 1023) / 1023.0 / 0.453 <= limit

    top = min(max(int(limit * 0.453 * 1023.0), -1), 1023)
    while top >= 0 and not at_most(top):
        top -= 1
    while top < 1023 and at_most(top + 1):
        top += 1
    seen = False
    for diff in noise_diffs(grey):
        if kth_bin_at_most(diff, diff.size // 4, top):
            return False
        seen = True
    return seen or 0.0 > limit


def noise_levels_above(grey: np.ndarray, limit: float) -> bool:
    """:func:`noise_above` by the levels themselves."""
    seen = False
    for level in noise_levels(grey):
        if level <= limit:
            return False
        seen = True
    return seen or 0.0 > limit


def kth_bin_at_most(x: np.ndarray, k: int, i: int) -> bool:
    """Whether ``kth(x, k)`` is at most bin ``i``'s value (``i / 1023``): the same answer,
    by counting the values in bins 0-i (no sort). A value's bin is int(value · 1023) in
    x's precision, clipped to 0-1023, so it is at most i < 1023 when value · 1023 < i + 1."""
    flat = x.ravel()
    if not 0 <= k < flat.size or flat.dtype not in (np.float32, np.float64):
        return kth(x, k) <= min(max(i, -1), 1023) / 1023.0
    if i >= 1023 or i < 0:
        return i >= 1023
    return np.count_nonzero(flat * 1023.0 < i + 1) > k


def noise_levels(grey: np.ndarray):
    """The pixel noise's standard deviation estimated from neighbours' differences (robust
    to ink), along each direction in turn (rows, then columns).

    For Gaussian noise the 25th percentile of |difference| is 0.453 σ (a quarter of the
    pairs at least lie inside the paper or inside a stroke, even on a tight crop of a 1,
    along one of the two directions).
    """
    for diff in noise_diffs(grey):
        yield kth(diff, diff.size // 4) / 0.453


def noise_diffs(grey: np.ndarray):
    """The neighbours' absolute differences :func:`noise_levels` looks at, along each
    direction in turn (those with any)."""
    if grey.size > 20_000:
        grey = grey[::2, ::2]  # a sample is plenty, and four times faster
    for axis in (0, 1):
        diff = np.abs(np.diff(grey, axis=axis)).ravel()
        if diff.size:
            yield diff


RIDGE_PCT = 10


def flatten(grey: np.ndarray) -> np.ndarray:
    """The ink standing out from its background (white-on-black ``grey``), ≥ 0.

    The background window must be wider than the strokes, but every pixel wider makes a
    shadow's edge, a vignette's curve or a narrow lit wedge look more like ink. So a
    first pass with a wide window finds the strokes, their width is measured (area ÷ half
    the outline, on the thinnest large piece: a shadow left as "ink" is wider than the
    pen), and the background is estimated again with a window just wider than that.
    """
    from scipy import ndimage

    h, w = grey.shape
    largest = max(15, int(0.4 * min(h, w)))
    background = background_map(grey, largest)
    flat = np.clip(grey - background, 0, None)
    if min(h, w) < 48:
        return flat
    top = top_value(flat)
    if top <= 0:
        return flat
    # (otsu's sample of the pixels, divided: the same values as a sample of the quotient)
    cut = max(otsu_of((flat[::2, ::2] if flat.size > 12_000 else flat) / top), 0.25) * top
    strong = flat > cut
    # An even background (a canvas, evenly lit paper, a plain gradient) is followed
    # exactly by the wide window: the second pass is for shadows and vignettes, and for
    # a shadow's band narrower than the window (it was taken for ink, so the background
    # looks even) which then runs into the frame.
    curved = curvature(background) >= min(0.05, 0.2 * top)
    if not curved and not touches_frame(strong):
        return flat
    labels, n = label(strong, SQUARE)
    if n == 0:
        return flat
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    edge = strong & ~erode3(strong)
    outline = np.bincount(labels[edge], minlength=n + 1)[1:]
    big = sizes >= max(0.25 * sizes.max(), 4)
    if not big.any():  # a few specks: no strokes to measure
        return flat
    width = float((2.0 * sizes[big] / np.maximum(outline[big], 1)).min()) + 1.0
    # A thin digit run together with a shadow is one large piece: its ridge (the centre
    # line's depth), in the thinner part, still tells the pen's width.
    depth = ndimage.distance_transform_cdt(strong, metric="chessboard")
    ridge = strong & (depth >= max3(depth))
    if ridge.any():
        width = min(width, 2.0 * float(np.percentile(depth[ridge], RIDGE_PCT)))
    size = max(11, int(3 * width + 4))
    if size >= 0.8 * largest:
        return flat
    narrow = np.clip(grey - background_map(grey, size), 0, None)
    if curved:
        return narrow
    # Only what the narrow window removes at the frame is a shadow's band; what it removes
    # inside (the middle of a blobby stroke wider than the pen's usual width) stays ink.
    removed = strong & (narrow <= cut)
    labels, n = label(removed, SQUARE)
    at_frame = pieces_at_frame(labels, n)
    if not at_frame.any():
        return flat
    band = dilate3(dilate3(at_frame[labels]))
    return np.where(band, narrow, flat)


def curvature(background: np.ndarray) -> float:
    """How far a background map departs from a plane (its 5th-95th percentile spread)."""
    b = background[::4, ::4]
    if b.min() == b.max():  # an even map (a clean canvas): the plane itself, no spread
        return 0.0
    n = b.size
    bins = curvature_bins(b, (n // 20, n * 19 // 20))
    if bins is not None:  # (the same numbers as kth_sorted's from the bins)
        return min(bins[1], 1023) / 1023.0 - min(bins[0], 1023) / 1023.0
    design = plane_design(b.shape)
    coef = plane_solver(b.shape) @ b.ravel()  # the least-squares plane (as lstsq's)
    residual = np.sort(np.clip(0.5 + b.ravel() - design @ coef, 0, 1))
    n = residual.size
    return kth_sorted(residual, n * 19 // 20) - kth_sorted(residual, n // 20)


CURVATURE_SLACK = 1e-7  # far above the two planes' difference (~1e-14 on the suite)


def curvature_bins(b: np.ndarray, ranks: tuple[int, int]) -> tuple[int, int] | None:
    """The 1,023-step bins (as :func:`kth_sorted`'s) of the residuals of ranks ``ranks``
    in :func:`curvature`, from the least-squares plane in closed form (on a full grid the
    centred y and x are orthogonal to each other and to 1) instead of the pseudo-inverse's
    product: the same plane but for rounding, so the ranked residuals are the same but for
    far less than ``CURVATURE_SLACK``. None when that could move either across a bin's
    edge (then the pseudo-inverse decides, as before). The clipping to 0-1 is monotone:
    done on the two ranked values only."""
    h, w = b.shape
    ys, yy = curvature_axis(h)
    xs, xx = curvature_axis(w)
    rows = np.add.reduce(b, 1, dtype=np.float64)
    mean = rows.sum() / b.size
    residual = np.subtract(0.5 + b, np.add.outer(ys * ((ys @ rows) / (w * yy)) + mean,
                                                 xs * ((np.add.reduce(b, 0, dtype=np.float64)
                                                        @ xs) / (h * xx))))
    residual = residual.ravel()  # (0.5 + b in float32, as curvature's)
    residual.partition(ranks)
    bins = []
    for rank in ranks:
        v = min(max(float(residual[rank]), 0.0), 1.0)
        low = int(max(v - CURVATURE_SLACK, 0.0) * 1023.0)
        if low != int(min(v + CURVATURE_SLACK, 1.0) * 1023.0):
            return None
        bins.append(min(max(low, 0), 1023))
    return bins[0], bins[1]


@functools.lru_cache(maxsize=256)
def curvature_axis(n: int) -> tuple[np.ndarray, float]:
    """0..n-1 centred (float64), and its sum of squares."""
    centred = np.arange(n) - (n - 1) / 2.0
    centred.flags.writeable = False
    return centred, float(centred @ centred)


@functools.lru_cache(maxsize=64)
def plane_design(shape: tuple[int, int]) -> np.ndarray:
    """The least-squares design matrix of a plane (1, y, x) over a grid (made once a shape:
    images come in a few sizes)."""
    ys, xs = np.indices(shape, dtype=np.float32)
    design = np.stack([np.ones(ys.size, np.float32), ys.ravel(), xs.ravel()], 1)
    design.flags.writeable = False
    return design


@functools.lru_cache(maxsize=64)
def plane_solver(shape: tuple[int, int]) -> np.ndarray:
    """The pseudo-inverse of ``plane_design(shape)``: a plane's least-squares coefficients
    by one product (``np.linalg.lstsq`` costs ~40 us a call; the numbers differ only by
    rounding)."""
    solver = np.linalg.pinv(plane_design(shape).astype(np.float64))
    solver.flags.writeable = False
    return solver


def pieces_at_frame(labels: np.ndarray, n: int) -> np.ndarray:
    """Which of the ``n`` labelled pieces touch the frame (index 0, the background, never)."""
    at_frame = np.zeros(n + 1, bool)
    for border in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        at_frame[border] = True
    at_frame[0] = False
    return at_frame


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes(mask)`` (the same pixels): the mask and the pieces of
    its background (4-connected, as SciPy's) that do not reach the frame. One labelling,
    instead of SciPy's dilation repeated until it stops changing (several times slower)."""
    labels, n = label(~mask, CROSS)
    return ~pieces_at_frame(labels, n)[labels]


def erode3(mask: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3×3 square (outside the image counts as background)."""
    out = np.zeros(mask.shape, bool)  # the frame's pixels have a background neighbour
    rows = mask[:-2] & mask[1:-1] & mask[2:]
    out[1:-1, 1:-1] = rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]
    return out


def touches_frame(mask: np.ndarray) -> bool:
    """Whether any of ``mask`` lies on the image's outermost rows or columns."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def framed(mask: np.ndarray, value: bool) -> np.ndarray:
    """``np.pad(mask, 1, constant_values=value)`` for a 2-D mask (without np.pad's
    general machinery, tens of microseconds a call)."""
    out = np.full((mask.shape[0] + 2, mask.shape[1] + 2), value, bool)
    out[1:-1, 1:-1] = mask
    return out


def dilate_ring(mask: np.ndarray) -> np.ndarray:
    """Whether any of each pixel's 8 neighbours is set (the pixel itself not counted)."""
    p = framed(mask, False)
    return (p[:-2, :-2] | p[:-2, 1:-1] | p[:-2, 2:] | p[1:-1, :-2] | p[1:-1, 2:] |
            p[2:, :-2] | p[2:, 1:-1] | p[2:, 2:])


def dilate3(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by a 3×3 square (outside the image counts as background)."""
    return max3(mask)


def max3(a: np.ndarray) -> np.ndarray:
    """The maximum over each pixel's 3×3 window, clipped at the frame: the same as
    ``ndimage.maximum_filter(a, size=3)`` (whose mirrored border only repeats pixels
    already in the window), without its per-call set-up (several times slower here)."""
    rows = a.copy()
    np.maximum(rows[1:], a[:-1], out=rows[1:])
    np.maximum(rows[:-1], a[1:], out=rows[:-1])
    out = rows.copy()
    np.maximum(out[:, 1:], rows[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], rows[:, 1:], out=out[:, :-1])
    return out


def opening(a: np.ndarray, size: int) -> np.ndarray:
    """The grey opening of ``a`` by a size×size square: ``ndimage.grey_opening(a, size)``,
    the same numbers. The maximum runs over the minimum's window reflected: an even
    window is off-centre by half a pixel, and the same window twice moved every edge in
    the image by a pixel (a shadow's edge left a line of "ink" beside it)."""
    return window_extreme(window_extreme(a, size, np.minimum), size, np.maximum,
                          reflected=True)


def window_extreme(a: np.ndarray, size: int, op: np.ufunc, *, reflected: bool = False
                   ) -> np.ndarray:
    """``ndimage.minimum_filter(a, size)`` (``op`` np.minimum) or ``maximum_filter``
    (np.maximum) of a 2-D array, the same numbers (a minimum or maximum does not round),
    several times faster on the background's wide windows: SciPy's running extreme costs
    more per pixel than a few whole-array ``op``s of windows doubling in width.
    ``reflected``: over the window mirrored about the pixel (the same for an odd size)."""
    # SciPy's centring of an even size: half before the pixel, one fewer after it.
    before, after = size // 2, size - 1 - size // 2
    if reflected:
        before, after = after, before
    if not 1 <= size <= min(a.shape):  # a window wider than the image: SciPy's mirroring
        from scipy import ndimage

        return (ndimage.minimum_filter if op is np.minimum else ndimage.maximum_filter)(
            a, size=size, origin=-1 if reflected and size % 2 == 0 else 0)
    for _ in range(2):  # along the rows, then (transposed) along the columns
        n = a.shape[0]
        p = np.empty((n + size - 1,) + a.shape[1:], a.dtype)  # mirrored, as SciPy's "reflect"
        p[before:before + n] = a
        if before:
            p[:before] = a[before - 1::-1]
        if after:
            p[before + n:] = a[:n - after - 1:-1]
        width = 1
        while 2 * width <= size:  # p[i] becomes the extreme of the ``width`` values from i
            p = op(p[:-width], p[width:])
            width *= 2
        # Two overlapping windows of ``width`` cover one of ``size``.
        a = (p if width == size else op(p[:n], p[size - width:size - width + n])).T
    return a


def label(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """``ndimage.label(mask, structure=structure)`` for a boolean mask: the same labels,
    from the same C function, without SciPy's wrapper (its checks and backend dispatch took
    half as long again as the labelling of a working-size mask, 90 µs against 60)."""
    fast = private_label()
    if fast is not None and mask.dtype == bool and mask.ndim == 2 and mask.size:
        out = np.empty(mask.shape, np.int32)
        try:
            return out, int(fast(mask, structure, out))
        except Exception:  # a SciPy whose private function changed: the public one below
            pass
    from scipy import ndimage

    return ndimage.label(mask, structure=structure)


@functools.cache
def private_label():
    """SciPy's C labelling function, if it is where it has been (and labels as the public
    function does on a small check); else None."""
    try:
        from scipy import ndimage
        from scipy.ndimage import _ni_label

        fn = _ni_label._label
        check = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], bool)
        out = np.empty(check.shape, np.int32)
        n = fn(check, SQUARE, out)
        labels, m = ndimage.label(check, structure=SQUARE)
        return fn if n == m and np.array_equal(out, labels) else None
    except Exception:
        return None


def label8(mask: np.ndarray) -> tuple[np.ndarray, int, tuple[slice, slice]]:
    """``ndimage.label(mask, structure=SQUARE)`` (8-connected pieces), and the window
    holding them all: labelled on the mask's bounding box only, several times faster for
    a digit on a larger page. The labels are the same: pieces are numbered in the raster
    order of their first pixel, which a crop keeps."""
    rows = mask.any(1)  # (bbox's, and whether there is any)
    top = int(rows.argmax()) if rows.size else 0
    if not rows.size or not rows[top]:
        return np.zeros(mask.shape, np.int32), 0, (slice(0, 0), slice(0, 0))
    bottom = rows.size - int(rows[::-1].argmax())
    cols = mask[top:bottom].any(0)
    window = (slice(top, bottom), slice(int(cols.argmax()), cols.size - int(cols[::-1].argmax())))
    inside, n = label(mask[window], SQUARE)
    labels = np.zeros(mask.shape, inside.dtype)
    labels[window] = inside
    return labels, n, window


def find_boxes(labels: np.ndarray, window: tuple[slice, slice]) -> list:
    """``ndimage.find_objects(labels)`` for labels lying inside ``window``."""
    from scipy import ndimage

    if labels[window].size == 0:  # no pieces (all the ink was taken for lines)
        return []
    top, left = window[0].start, window[1].start
    return [(slice(rows.start + top, rows.stop + top), slice(cols.start + left, cols.stop + left))
            for rows, cols in ndimage.find_objects(labels[window])]


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a mask's pixels, ends exclusive (it must have some);
    from its rows' and columns' ``any`` (``np.nonzero`` of every pixel is far slower)."""
    rows = mask.any(1)
    top, bottom = int(rows.argmax()), rows.size - int(rows[::-1].argmax())
    cols = mask[top:bottom].any(0)
    return top, bottom, int(cols.argmax()), cols.size - int(cols[::-1].argmax())


def spans(mask: np.ndarray, share: float) -> bool:
    """Whether the mask's pixels (it must have some) reach across ``share`` of its height
    or of its width."""
    top, bottom, left, right = bbox(mask)
    return bottom - top >= share * mask.shape[0] or right - left >= share * mask.shape[1]


def crop_to_ink(mask: np.ndarray) -> np.ndarray:
    """The mask cut to its pixels' bounding box (it must have some)."""
    top, bottom, left, right = bbox(mask)
    return mask[top:bottom, left:right]


def fraction(mask: np.ndarray) -> float:
    """``mask.mean()`` of a boolean mask (the same number), by counting."""
    return np.count_nonzero(mask) / mask.size


def background_map(grey: np.ndarray, size: int) -> np.ndarray:
    """A smooth estimate of the (dark) background: a morphological opening (top-hat).

    An opening with a window wider than any stroke erases the strokes and keeps what
    is large — shadows, grey paper, a lighting gradient — which is then subtracted.
    """
    h, w = grey.shape
    if min(h, w) < 48:  # a small crop: lighting cannot vary across it
        rough = grey > otsu(grey)
        rest = grey[~rough]
        return np.full_like(grey, median(rest) if rest.size else 0.0)
    if min(h, w) >= 96:  # at half resolution (the minimum of 2×2 blocks): four times faster
        h2, w2 = h // 2 * 2, w // 2 * 2
        g = grey[:h2, :w2]
        rows = np.minimum(g[0::2], g[1::2])  # (whole rows first: the same pairs' minima)
        blocks = np.minimum(rows[:, 0::2], rows[:, 1::2])
        half = size // 2
        level = even_level(blocks, half)
        if level is not None:  # (the opening, its dilation and smoothing are that level)
            return np.minimum(grey, level)
        opened = opening(blocks, half)
        # A block straddling a shadow's edge took the dark side's value: one pixel of
        # dilation (then the minimum with ``grey`` below) puts the edge back where it is,
        # instead of leaving a thin line of "ink" along it.
        smooth = smooth_upsampled(dilated_pairs(opened), h, w)
    else:
        level = even_level(grey, size)
        if level is not None:
            return np.minimum(grey, level)
        opened = opening(grey, size)
        smooth = smooth3(opened)
    return np.minimum(smooth, grey)


def even_level(a: np.ndarray, size: int) -> np.float32 | None:
    """The opening's value when ``a``'s minimum lies in every size×size window (a clean
    canvas's exact background): then the minimum filter, and so the opening, is that
    level everywhere. Sufficient: every tile of ⌈size/2⌉ pixels holds the minimum, as
    every window (mirrored at the edges, as SciPy's) holds a whole tile. None otherwise."""
    tile = (size + 1) // 2
    low = a.min()
    if tile < 1 or np.count_nonzero(a == low) < -(-a.shape[0] // tile) * -(-a.shape[1] // tile):
        return None  # (fewer pixels at the minimum than tiles: a quick no)
    mins = np.minimum.reduceat(a, np.arange(0, a.shape[0], tile), axis=0)
    mins = np.minimum.reduceat(mins, np.arange(0, a.shape[1], tile), axis=1)
    return low if mins.max() == low else None


def dilated_pairs(blocks: np.ndarray) -> np.ndarray:
    """The 3×3 maximum (edges clipped) of the 2×2 blocks upsampled, at block resolution:
    pixel (y, x) of the upsampled image (an odd last row or column copying its neighbour)
    takes ``pairs[(y + 1) // 2, (x + 1) // 2]``. Pixel y's window (rows y-1..y+1) meets
    blocks (y-1)//2..(y+1)//2: a pair of neighbouring blocks, or one at an edge."""
    def pair_max(b: np.ndarray) -> np.ndarray:  # along axis 0
        out = np.empty((b.shape[0] + 1,) + b.shape[1:], b.dtype)
        out[0], out[-1] = b[0], b[-1]
        np.maximum(b[:-1], b[1:], out=out[1:-1])
        return out

    return pair_max(pair_max(blocks).T).T


TINY = 2.0 ** -25  # float32 values from here to 1: sums of three are exact in float64


def sums_of_three_exact(a: np.ndarray) -> bool:
    """Whether ``a`` is float32 with every value 0 or in [TINY, 1]: then sums of three of
    its values are exact in float64, in any order (as SciPy's running sums)."""
    return a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1 and \
        not ((a > 0) & (a < TINY)).any()


def smooth_upsampled(pairs: np.ndarray, h: int, w: int) -> np.ndarray:
    """``ndimage.uniform_filter(size=3)`` of ``pairs`` upsampled to h×w as in
    ``dilated_pairs`` (the same float32 numbers), computed on the pairs.

    A row of the upsampled image repeats a row of pairs, so its 3-row mean is one of two
    sums: (j, j, j+1) for even rows, (j, j+1, j+1) for odd ones. SciPy's running sums in
    float64 round nowhere when every value is 0 or in [2^-25, 1] (and its rows' means,
    in float32, again): any order of adding gives the same sums. Otherwise SciPy does it.
    """
    from scipy import ndimage

    if not sums_of_three_exact(pairs):
        return ndimage.uniform_filter(upsample_pairs(pairs, h, w), size=3)
    return mean3_pairs(mean3_pairs(pairs, h, 0), w, 1)


def smooth3(a: np.ndarray) -> np.ndarray:
    """``ndimage.uniform_filter(a, size=3)`` (the same float32 numbers), by whole-array
    sums of three: exact in float64, as SciPy's running sums, for values 0 or in
    [2^-25, 1] (as :func:`smooth_upsampled`); otherwise SciPy does it."""
    from scipy import ndimage

    if min(a.shape) < 2 or not sums_of_three_exact(a):
        return ndimage.uniform_filter(a, size=3)
    for _ in range(2):  # along the rows, then (transposed) along the columns
        both = np.add(a[:-1], a[1:], dtype=np.float64)
        out = np.empty(a.shape, np.float32)
        # Edges clamped, as SciPy's mirrored border; divided in float64, stored as float32.
        np.divide(both[:-1] + a[2:], 3.0, out=out[1:-1], casting="unsafe")
        np.divide(both[:1] + a[:1], 3.0, out=out[:1], casting="unsafe")
        np.divide(both[-1:] + a[-1:], 3.0, out=out[-1:], casting="unsafe")
        a = out.T
    return a


def upsample_pairs(pairs: np.ndarray, h: int, w: int) -> np.ndarray:
    return pairs[(np.arange(h) + 1) // 2][:, (np.arange(w) + 1) // 2]


def mean3_pairs(pairs: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Along ``axis``: the 3-pixel mean (edges clamped, as SciPy's mirrored border) of the
    n pixels that take ``pairs[(y + 1) // 2]``, as float32."""
    def part(a: np.ndarray, *cuts: slice) -> np.ndarray:  # slices along ``axis``
        for cut in cuts:
            a = a[(slice(None),) * axis + (cut,)]
        return a

    lower, upper = part(pairs, slice(None, -1)), part(pairs, slice(1, None))
    out = np.empty(pairs.shape[:axis] + (n,) + pairs.shape[axis + 1:], np.float32)
    both = np.add(lower, upper, dtype=np.float64)
    # Pixels 2j take pairs j, j, j+1; pixels 2j+1 pairs j, j+1, j+1 (divided in float64,
    # then rounded to float32 as they are stored).
    np.divide(both + lower, 3.0, out=part(out, slice(0, None, 2), slice(0, both.shape[axis])),
              casting="unsafe")
    both += upper
    np.divide(part(both, slice(0, n // 2)), 3.0, out=part(out, slice(1, None, 2)),
              casting="unsafe")
    if n % 2:  # the last pixel, its pair's only one: (j, j, j) / 3 is itself
        part(out, slice(-1, None))[...] = part(pairs, slice(-1, None))
    return out


OTSU_CENTRES = (np.arange(64) + 0.5) / 64  # Otsu's 64 bins of [0, 1]
OTSU_EDGES = {np.dtype(t): np.arange(1, 64, dtype=t) for t in (np.float32, np.float64)}


def otsu(x: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]."""
    if x.ndim == 2 and x.size > 12_000:
        x = x[::2, ::2]  # a quarter of the pixels make the same histogram
    return otsu_of(x)


OTSU_SCALED_EDGES = {t: e / 64 for t, e in OTSU_EDGES.items()}  # exact: 64 is a power of 2


OTSU_COUNTED_MIN = 500  # values: from here a bincount beats a sort and a search


def otsu_of(x: np.ndarray) -> float:
    """:func:`otsu` of all of ``x``'s values (not a sample)."""
    # Bin j holds the values v with j <= v·64 < j + 1 (the first and last bins also what lies
    # beyond): counted on the sorted values by searching for the edges (a vectorised sort is
    # faster than converting every value to a bin index for np.bincount). Multiplying a
    # float by 64 is exact (it only overflows to inf, past the last edge anyway), so v·64 < j
    # is v < j/64: x is sorted as it is.
    edges = OTSU_SCALED_EDGES.get(x.dtype)
    bounds = np.empty(65, np.float64)  # counts below each edge: exact as floats
    n = x.size
    bounds[0], bounds[64] = 0, n
    if edges is None:
        scaled = np.multiply(x, 64).ravel()
        scaled.sort()
        edges = OTSU_EDGES.get(scaled.dtype)
        bounds[1:64] = scaled.searchsorted(np.arange(1, 64, dtype=scaled.dtype)
                                           if edges is None else edges)
    elif n >= OTSU_COUNTED_MIN:
        # Counted instead: v·64 clipped to 0-63 (inf and values past 1 into the last bin, as
        # the edges' search put them), whose integer part is the bin: the same counts.
        scaled = np.multiply(x.ravel(), 64)
        np.clip(scaled, 0, 63, out=scaled)
        np.add.accumulate(np.bincount(scaled.astype(np.intp), minlength=64)[:63],
                          out=bounds[1:64])
    else:
        bounds[1:64] = np.sort(x, axis=None).searchsorted(edges)
    hist = bounds[1:] - bounds[:-1]
    weighted = hist * OTSU_CENTRES
    w0 = bounds[1:]  # (the cumulative sum of the counts, exactly)
    w1 = n - w0
    cumulative = np.add.accumulate(weighted)  # (np.cumsum's sums, in its order)
    m0 = cumulative / np.maximum(w0, 1e-9)
    m1 = (np.add.reduce(weighted) - cumulative) / np.maximum(w1, 1e-9)
    between = w0 * w1 * np.square(m0 - m1)
    return float(OTSU_CENTRES[int(between[:-1].argmax())])


MASK_SIDE = 4 * BOX  # the digit's mask is drawn at 80 px, then area-averaged down to 20


def render(coverage: np.ndarray, *, normalize_stroke: bool = False) -> np.ndarray:
    """Ink coverage → MNIST's look: a binary digit area-averaged into a 20-px box, centred.

    MNIST's digits are NIST's binary scans reduced with anti-aliasing; so the coverage is
    resampled (smoothly) to a larger working size, cut at half the ink level, cropped to
    the ink, optionally brought to MNIST's stroke width, and reduced by area averaging.
    """
    mask = limit_aspect(limit_slant(digit_mask(coverage)))
    mask = normalize_stroke_width(mask, always=normalize_stroke)
    return centre_by_mass(fit_box(mask), clipped=True)


def digit_mask(coverage: np.ndarray) -> np.ndarray:
    """The binary digit at about MASK_SIDE px (its longest side), cropped to the ink."""
    h, w = coverage.shape
    scale = MASK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Image.fromarray(coverage, "F").reduce(…).resize(…), on Pillow's core images (the
    # same calls, without the copies in and out and the wrappers' checks).
    pixels = np.ascontiguousarray(coverage, dtype=np.float32)
    image = pillow_core(pixels)
    if scale < 0.5:
        factor = int(1 / scale) // 1 if scale > 0 else 1
        if factor != 1:  # a reduction by 1 is a copy
            image = image.reduce((factor, factor), (0, 0) + image.size)
    resample = Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.BOX
    if image.size != size:  # a resize to the same size is a copy
        image = image.resize(size, resample, (0, 0) + image.size)
    mask = pixels_of(image) > 0.5
    if not mask.any():
        raise ImageError("no digit found: the ink is too faint or too small")
    return crop_to_ink(mask)


RAW_FLOAT = ("F", 0, 1)  # Pillow's raw layout of a float32 image: rows of 4-byte pixels


def pillow_core(pixels: np.ndarray):
    """Pillow's core image ("F") of a C-contiguous float32 array, sharing its memory: what
    ``Image.fromarray(pixels, mode="F").im`` holds, without the copy."""
    h, w = pixels.shape
    return Image.core.map_buffer(pixels, (w, h), "raw", 0, RAW_FLOAT)


def pixels_of(image) -> np.ndarray:
    """A core "F" image's pixels as a float32 array: ``np.asarray`` of it, without going
    through bytes (pasted into an array's own memory)."""
    w, h = image.size
    pixels = np.empty((h, w), np.float32)
    pillow_core(pixels).paste(image, (0, 0, w, h))
    return pixels


def resized_pixels(pixels: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """``np.asarray(Image.fromarray(pixels, "F").resize(size, resample), np.float32)``, the
    same numbers, for a C-contiguous float32 array (itself when the size is its own)."""
    h, w = pixels.shape
    if size == (w, h):
        return pixels
    return pixels_of(pillow_core(pixels).resize(size, resample, (0, 0, w, h)))


# The slant of MNIST's digits (horizontal shift per row of the ink's moments, positive
# leaning left), measured on 2,000 t10k digits: 5th percentile -0.40, 95th 0.38. The limit
# sits inside that range (about the 15th and 85th percentiles): on slanted hands and
# turned photos of two independent user-style generators, shearing back to 0.25 read
# 1-3 points better than to 0.38, and styles with MNIST's own slants did not change.
MNIST_SLANT = 0.25


def limit_slant(mask: np.ndarray) -> np.ndarray:
    """Shear a digit slanted further than almost any in MNIST (a tilted camera or paper, a
    very slanted hand) back to the edge of MNIST's range; others are left as they are."""
    # The moments from the rows' and columns' counts (exact integers, in integers: the
    # same numbers in float64 as sums of the pixels' weights; the pixels' coordinates,
    # np.nonzero, are several times slower to gather).
    h, w = mask.shape
    rows = np.count_nonzero(mask, axis=1)
    count = float(rows.sum())
    if count < 10:
        return mask
    ys, xs = np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64)
    sy, sx = float(rows @ ys), float(np.count_nonzero(mask, axis=0) @ xs)
    yy = float(rows @ (ys * ys)) - sy * sy / count
    slant = (float(ys @ (mask @ xs)) - sy * sx / count) / max(yy, 1e-9)
    excess = slant - min(max(slant, -MNIST_SLANT), MNIST_SLANT)  # np.clip's number
    if abs(excess) < 0.02:
        return mask
    grow = int(np.ceil(abs(excess) * h)) + 2
    padded = np.zeros((h, w + 2 * grow), np.float32)
    padded[:, grow:grow + w] = mask
    cy = sy / count
    # Output (x, y) samples input (x + excess·(y − cy), y): the slant drops by ``excess``.
    # Image.transform's call on the core images (into a zeroed image, filling the outside).
    sheared = np.zeros_like(padded)
    pillow_core(sheared).transform((0, 0, w + 2 * grow, h), pillow_core(padded),
                                   Image.Transform.AFFINE, (1, excess, -excess * cy, 0, 1, 0),
                                   Image.Resampling.BILINEAR, True)
    out = sheared > 0.5
    if not out.any():
        return mask
    return crop_to_ink(out)


# MNIST's digits are seldom wider than tall: the width ÷ height of their ink, measured on
# 10,000 t10k digits, has its median at 0.8 and its 90th percentile at 1.0 (a round 0 or
# a 2 with a long base). A round, wide hand (or a photo stretched by an app) gives digits
# up to twice as wide, which the model reads as something else. Narrowing to 0.9 (not
# 1.0) also lifted pen-drawn and photographed digits of every kind by 0-2 points on two
# independent user-style generators (a pen's line and our mask make digits a little
# wider than MNIST's); 0.8 began to hurt thick markers.
MNIST_WIDE = 0.9


def limit_aspect(mask: np.ndarray) -> np.ndarray:
    """Narrow a digit wider than MNIST's widest usual ones (width ÷ height above
    ``MNIST_WIDE``) to that width; others are left as they are."""
    h, w = mask.shape
    if w <= MNIST_WIDE * h or h < 2:
        return mask
    width = max(1, round(MNIST_WIDE * h))
    out = resized_pixels(mask.astype(np.float32, order="C"), (width, h),
                         Image.Resampling.BOX) > 0.5
    if not out.any():
        return mask
    return crop_to_ink(out)


def fit_box(mask: np.ndarray) -> np.ndarray:
    """Scale so the longest side is 20 px, keeping the aspect ratio, by area averaging."""
    h, w = mask.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pixels = resized_pixels(mask.astype(np.float32, order="C"), size, Image.Resampling.BOX)
    return np.clip(pixels, 0, 1)


# Stroke width relative to the digit's size (twice the mean ridge depth of the mask ÷ the
# box side) measured with this module's own path on 1,000 real t10k digits: 10th percentile
# 0.085, median 0.112, 97th percentile 0.2. Outside 0.085-0.16 a stroke is moved to the
# target, a little above the median: a pen's even line has less ink than MNIST's blobby
# strokes of the same median width (measured: best accuracy on pen-drawn digits), and an
# even marker or brush line as wide as MNIST's widest blobs reads worse than they do
# (measured on marker and brush drawings: 0.16 instead of 0.2 lifts them by 3-15%).
MNIST_STROKE = (0.085, 0.125, 0.16)


def width_ratio(depth: np.ndarray, mask: np.ndarray) -> float:
    """The strokes' mean width (twice the ridge's mean depth, less the centre pixel) as a
    fraction of the mask's longest side."""
    return float(2.0 * depth.mean() - 1.0) / max(mask.shape)


def ridge_depths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The mask framed by a pixel of background, its squared distances to the background,
    and the depths of its ridge (the strokes' half-widths along their centre lines)."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), bool)
    padded[1:-1, 1:-1] = mask
    if not mask.any():
        return padded, None, None
    # The squared Euclidean distances to the background, as integers: the ridge (a local
    # maximum) is found on those, and the square root taken on the ridge only (the same
    # numbers as distance_transform_edt's depths).
    squared = squared_distances(padded)
    # padded & (squared >= max3(squared)), on the mask's pixels only (the frame is
    # background): each pixel's 3×3 maximum from the rows above and below, then the sides.
    rows = np.maximum(squared[:-2], squared[2:])
    np.maximum(rows, squared[1:-1], out=rows)
    peak = np.maximum(rows[:, :-2], rows[:, 2:])
    np.maximum(peak, rows[:, 1:-1], out=peak)
    inner = squared[1:-1, 1:-1]
    ridge = inner >= peak
    ridge &= mask
    return padded, squared, np.sqrt(inner[ridge].astype(np.float64))


def row_gaps(marks: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Each pixel's distance along its row to the nearest pixel of ``marks`` (in the
    rows' uint8 ``cols``, counted so that a row with no mark to one side reads as the
    first column's value or more away), from the left and the right: the smaller of the two.
    Accumulating bytes is several times faster than a distance transform's floats."""
    left = cols * marks
    np.maximum.accumulate(left, axis=1, out=left)
    right = cols * marks[:, ::-1]
    np.maximum.accumulate(right, axis=1, out=right)
    np.subtract(cols, left, out=left)
    np.subtract(cols, right, out=right)
    np.minimum(left, right[:, ::-1], out=left)
    return left


def squared_distances(mask: np.ndarray) -> np.ndarray:
    """Each pixel's squared Euclidean distance to the nearest background pixel, exact in
    int32, for a mask whose frame is background (the same numbers as SciPy's distance
    transform, squared, several times faster on a digit's mask).

    Along the rows, the distance g to the nearest background pixel of the same row; then
    D(y, x) = min over rows y' of (y - y')² + g(y', x)², where only rows closer than the
    distance found so far can do better: a few shifts for strokes a few pixels deep."""
    h, w = mask.shape
    if w > 255:
        return squared_distances_wide(mask)
    # The rows' distances in uint8 (:func:`row_gaps`).
    rows = row_gaps(~mask, np.arange(w, dtype=np.uint8))
    # g sits in a column of rows of "far" above and below it: row y ± d of g is one slice,
    # with no shift past either end (the distances found never reach the far value).
    pad = h // 2 + 1  # d stays below h / 2: the frame's rows are background
    framed = np.full((h + 2 * pad, w), 1 << 28, np.int32)
    g = framed[pad:pad + h]
    np.multiply(rows, rows, out=g, dtype=np.int32)
    out = g.copy()
    nearer = np.empty_like(g)
    d = 1
    while d * d < out.max():
        np.minimum(framed[pad - d:pad - d + h], framed[pad + d:pad + d + h], out=nearer)
        nearer += d * d
        np.minimum(out, nearer, out=out)
        d += 1
    return out


def squared_distances_wide(mask: np.ndarray) -> np.ndarray:
    """``squared_distances`` of a mask wider than 255 columns (in int32 throughout)."""
    h, w = mask.shape
    cols = np.arange(w, dtype=np.int32)
    left = np.maximum.accumulate(np.where(mask, 0, cols), axis=1)  # column 0 is background
    right = np.minimum.accumulate(np.where(mask, w - 1, cols)[:, ::-1], axis=1)[:, ::-1]
    g = np.minimum(cols - left, right - cols)
    g *= g
    out = g.copy()
    shifted = np.empty_like(g)
    d = 1
    while d * d < out.max():
        np.add(g[:-d], d * d, out=shifted[:h - d])
        np.minimum(out[d:], shifted[:h - d], out=out[d:])
        np.add(g[d:], d * d, out=shifted[:h - d])
        np.minimum(out[:-d], shifted[:h - d], out=out[:-d])
        d += 1
    return out



def normalize_stroke_width(mask: np.ndarray, *, always: bool = False) -> np.ndarray:
    """Thin marker strokes and thicken hairlines towards MNIST's width.

    By default only strokes outside what MNIST itself contains are changed (and, in a
    digit of MNIST's width, the parts a pressure-varying pen left thin: thicken_thin_parts);
    ``always`` moves every digit to MNIST's median width.
    """
    lo, target, hi = MNIST_STROKE
    padded, squared, depth = ridge_depths(mask)
    if depth is None:
        return mask
    ratio = width_ratio(depth, mask)
    if not always and lo <= ratio <= hi:
        return thicken_thin_parts(mask, padded, squared, depth)
    radius = int(round(abs(ratio - target) * max(mask.shape) / 2))
    if radius < 1:
        return mask
    if ratio > target:
        # ndimage.binary_erosion(mask, structure=disk_of(radius)), the same pixels: those
        # farther than the radius from the background (the frame's pixels are the nearest
        # of the background outside the mask).
        out = squared[1:-1, 1:-1] > radius * radius
    else:
        out = np.zeros((mask.shape[0] + 2 * radius, mask.shape[1] + 2 * radius), bool)
        out[radius:-radius, radius:-radius] = mask  # np.pad(mask, radius)
        out = dilated_by_disk(out, radius)
    if np.count_nonzero(out) < 0.2 * np.count_nonzero(mask):
        return mask  # thinning would erase the digit
    return crop_to_ink(out)


# A pen whose line swells and thins with the pressure (a brush pen, a ballpoint pressed
# hard in places) leaves parts of a digit of MNIST's mean width far thinner than MNIST's
# strokes (its 10th percentile of width is 0.085 of the box): parts under THIN_PART wide
# (where no disk that wide fits) are widened by a pixel on each side of the 80-px mask,
# when at least THIN_SHARE of the ridge is that thin and WIDE_SHARE of it over WIDE_PART
# wide (the width varies: an evenly thin pen is not helped by this, measured). Measured on
# the held-out pressure-pen style: +0.014-0.019 of accuracy ratio (on all 35 styles ±0.008
# at most elsewhere); without the WIDE_ gate +0.025-0.03, but other styles lost 0.01-0.014.
THIN_PART, THIN_SHARE = 0.1, 0.3
WIDE_PART, WIDE_SHARE = 0.14, 0.1
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)  # 4-connectivity


def thicken_thin_parts(mask: np.ndarray, padded: np.ndarray, squared: np.ndarray,
                       depth: np.ndarray) -> np.ndarray:
    """``mask`` with its parts thinner than THIN_PART of its side widened by one pixel each
    side; the rest unchanged. ``padded``, ``squared`` and ``depth`` are ridge_depths'."""
    side = max(mask.shape)
    widths = 2.0 * depth - 1.0
    if np.count_nonzero(widths < THIN_PART * side) < THIN_SHARE * depth.size or \
            np.count_nonzero(widths > WIDE_PART * side) < WIDE_SHARE * depth.size:
        return mask
    radius = int(round(THIN_PART * side / 2))
    if radius < 1:
        return mask
    # Where a disk of that radius fits (the opening): erosion is a depth above the radius.
    opened = dilated_by_disk(squared > radius * radius, radius)
    thin = padded & ~opened
    if np.count_nonzero(thin) < 0.1 * np.count_nonzero(padded):
        return mask
    # padded | ndimage.binary_dilation(thin, structure=CROSS): thin and its 4 neighbours.
    out = padded | thin
    out[1:] |= thin[:-1]
    out[:-1] |= thin[1:]
    out[:, 1:] |= thin[:, :-1]
    out[:, :-1] |= thin[:, 1:]
    return crop_to_ink(out)


def dilated_by_disk(points: np.ndarray, radius: int) -> np.ndarray:
    """``ndimage.binary_dilation(points, structure=disk_of(radius))``, the same pixels: those
    within ``radius`` of a point (x² + y² ≤ radius², outside the array no points), from
    the distance along each row to the row's nearest point (``near``, in bytes) and the
    rows within the radius, as squared_distances does, several times faster than SciPy's."""
    h, w = points.shape
    far = radius + 1
    if w + far > 255 or radius < 1:
        from scipy import ndimage

        return ndimage.binary_dilation(points, structure=disk_of(radius))
    # Columns counted from ``far``: a row with no point to one side is ``far`` or more away.
    left = row_gaps(points, np.arange(far, w + far, dtype=np.uint8))
    np.minimum(left, far, out=left)
    framed = np.full((h + 2 * radius, w), far * far + 1, np.int16)
    near = framed[radius:radius + h]
    np.multiply(left, left, out=near, dtype=np.int16)
    out = near.copy()
    nearer = np.empty_like(near)
    for d in range(1, radius + 1):
        np.minimum(framed[radius - d:radius - d + h], framed[radius + d:radius + d + h],
                   out=nearer)
        nearer += d * d
        np.minimum(out, nearer, out=out)
    return out <= radius * radius


def disk_of(radius: int) -> np.ndarray:
    """A binary disk of the given radius (pixels), as a structuring element."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx**2 + yy**2 <= radius**2


def centre_by_mass(digit: np.ndarray, *, clipped: bool = False) -> np.ndarray:
    """Place the ≤20×20 digit in a 28×28 frame with its centre of mass at pixel (14, 14).

    MNIST moved each digit by whole pixels so that its centre of mass lands within half
    a pixel of (14, 14) (row, column; measured on t10k: mean 13.99 and 14.01).
    """
    h, w = digit.shape
    rows = digit.sum(1, dtype=np.float64)
    total = float(rows.sum())
    cy = float(rows @ np.arange(h)) / total if total else (h - 1) / 2
    cx = float(digit.sum(0, dtype=np.float64) @ np.arange(w)) / total if total else (w - 1) / 2
    top = min(max(math.floor(FRAME / 2 - cy + 0.5), 0), FRAME - h)  # np.clip's numbers
    left = min(max(math.floor(FRAME / 2 - cx + 0.5), 0), FRAME - w)
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[top:top + h, left:left + w] = digit
    if clipped:  # already in [0, 1], and so are the frame's zeros: the clip changes nothing
        return frame
    return np.clip(frame, 0, 1)


# ---------------------------------------------------------------- conveniences


def preprocess_bytes(data: bytes, *, name: str = "image",
                     normalize_stroke: bool = False) -> np.ndarray:
    """Image file bytes → (28, 28) float32 model input (errors start with ``name``)."""
    image = decode_image(data, name=name)
    try:
        return to_mnist(image, normalize_stroke=normalize_stroke)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None


def preprocess_file(path: str | Path, *, normalize_stroke: bool = False) -> np.ndarray:
    """An image file → (28, 28) float32 model input (errors name the file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return preprocess_bytes(data, name=str(path), normalize_stroke=normalize_stroke)
    except ImageError as e:
        message = str(e)
        raise ImageError(message if message.startswith(str(path)) else f"{path}: {message}") \
            from None


def see(original: Image.Image, processed: np.ndarray) -> Image.Image:
    """"What the model sees": the original beside the 28×28 input, both 224 px high."""
    side = 224
    left = ImageOps.contain(original.convert("RGB"), (side, side))
    right = Image.fromarray((processed * 255).astype(np.uint8), mode="L").resize(
        (side, side), Image.Resampling.NEAREST).convert("RGB")
    canvas = Image.new("RGB", (left.width + side + 12, side), (255, 255, 255))
    canvas.paste(left, (0, (side - left.height) // 2))
    canvas.paste(right, (left.width + 12, 0))
    return canvas
