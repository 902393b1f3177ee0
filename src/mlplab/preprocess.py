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

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mlplab.errors import ImageError

MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo decodes; a decompression bomb does not
MAX_BYTES = 25 * 1024 * 1024
WORK_SIDE = 160  # images are reduced to about this size before any per-pixel work
BOX, FRAME = 20, 28


# ---------------------------------------------------------------- decoding


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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{name}: {width}×{height} pixels is more than the "
                                 f"{max_pixels / 1e6:.0f}-megapixel limit; resize it first")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if image.format == "JPEG" and max(width, height) > 2 * WORK_SIDE:
                image.draft("RGB", (WORK_SIDE, WORK_SIDE))  # decode at a reduced scale
            image.load()
            image = ImageOps.exif_transpose(image)
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
                         "WebP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: the image is truncated or corrupt ({e})") from None
    return image


def to_grey(image: Image.Image) -> np.ndarray:
    """Grey float32 in [0, 1]; transparency composited so that the ink stays visible."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        full = 65535.0 if image.mode.startswith("I;16") or hi > 255 else 255.0
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
        ink = float(np.median(grey[drawn])) if drawn.any() else 0.0
        background = 1.0 if ink < 0.5 else 0.0
        return (grey * alpha + background * (1 - alpha)).astype(np.float32)
    if image.mode != "L":
        image = image.convert("RGB").convert("L")  # CMYK, YCbCr, 1, RGB…
    return np.asarray(image, dtype=np.float32) / 255.0


def reduce_for_work(image: Image.Image) -> Image.Image:
    """Shrink a large image (area-averaging keeps thin strokes as faint grey)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    side = max(image.size)
    if side <= WORK_SIDE:
        return image
    factor = -(-side // WORK_SIDE)  # ceil: the result is at most WORK_SIDE
    return image.reduce(factor) if factor >= 2 else image


# ---------------------------------------------------------------- the pipeline


def is_mnist_style(grey: np.ndarray) -> bool:
    """A 28×28 white-on-black digit on a clean black background: leave it as it is."""
    if grey.shape != (FRAME, FRAME):
        return False
    border = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel(),
                             grey[:, -2:].ravel()])
    # Strokes may touch the border (MNIST centres by mass), but most of it is black.
    return (float(np.median(border)) < 0.05 and float(border.mean()) < 0.15
            and float(np.median(grey)) < 0.05 and float(grey.max()) > 0.5)


def to_mnist(image: Image.Image | np.ndarray, *, normalize_stroke: bool = False) -> np.ndarray:
    """Any digit image (PIL image or array) → float32 (28, 28) in [0, 1], white on black.

    Strokes far thicker or thinner than any in MNIST (a marker, a hairline) are always
    brought into MNIST's range; ``normalize_stroke`` moves every digit to its median width.
    """
    if isinstance(image, Image.Image):
        return image_to_mnist(image, normalize_stroke=normalize_stroke)
    else:
        grey = np.asarray(image, dtype=np.float32)
        if grey.ndim == 3:  # H×W×C array
            grey = grey[..., :3].mean(-1) if grey.shape[-1] >= 3 else grey[..., 0]
        if grey.ndim != 2 or min(grey.shape) < 2:
            raise ImageError(f"an image of shape {np.shape(image)} is not a 2-D picture")
        if grey.max() > 1.0:
            grey = grey / 255.0
    if is_mnist_style(grey):
        return np.clip(grey, 0, 1).astype(np.float32)
    ink, _ = isolate_ink(grey)
    return centre_by_mass(fit_box(normalize_stroke_width(ink, always=normalize_stroke)))


def image_to_mnist(image: Image.Image, *, normalize_stroke: bool = False) -> np.ndarray:
    """Find the digit on a reduced copy, then redo the work on a sharper crop around it.

    A small digit on a big photo would keep only a few pixels after the first reduction;
    the second pass cuts the region out of the decoded image and reduces only that.
    """
    small = reduce_for_work(image)
    grey = to_grey(small)
    if is_mnist_style(grey):
        return np.clip(grey, 0, 1).astype(np.float32)
    ink, (top, bottom, left, right, inverted) = isolate_ink(grey)
    scale = image.width / small.width
    side = max(bottom - top, right - left)
    if scale > 1.5 and side < 0.6 * WORK_SIDE:
        pad = 0.25 * side + 2
        box = (max(0, int((left - pad) * scale)), max(0, int((top - pad) * scale)),
               min(image.width, int((right + pad) * scale) + 1),
               min(image.height, int((bottom + pad) * scale) + 1))
        crop = to_grey(reduce_for_work(image.crop(box)))
        try:
            ink, _ = isolate_ink(crop, inverted=inverted)
        except ImageError:
            pass  # keep the first pass's digit
    return centre_by_mass(fit_box(normalize_stroke_width(ink, always=normalize_stroke)))


def isolate_ink(grey: np.ndarray, *, inverted: bool | None = None) -> tuple[np.ndarray, tuple]:
    """Bright ink on a black background, cropped to the digit; raise if there is none.

    Returns the crop and (top, bottom, left, right, inverted) in ``grey``'s coordinates.
    """
    from scipy import ndimage

    h, w = grey.shape
    if inverted is None:
        b = max(1, min(h, w) // 20)
        border = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(),
                                 grey[:, -b:].ravel()])
        inverted = bool(np.median(border) > 0.5)  # dark ink on light paper
    if inverted:
        grey = 1.0 - grey
    flat = np.clip(grey - background_map(grey), 0, None)
    # The ink's brightness: the 10th brightest pixel (one noisy pixel is not ink, and a
    # small digit on a big page is too few pixels for a percentile).
    contrast = float(np.partition(flat.ravel(), -10)[-10]) if flat.size > 20 else 0.0
    if contrast < 0.12:
        raise ImageError("no digit found: the image has no ink that stands out from the "
                         "background")
    flat = np.clip(flat / contrast, 0, 1)
    t = otsu(flat)
    mask = flat > max(t, 0.25)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise ImageError("no digit found: nothing remains after removing the background")
    sizes = ndimage.sum_labels(mask, labels, np.arange(1, n + 1))
    boxes = ndimage.find_objects(labels)
    keep = np.zeros(n + 1, bool)
    largest = sizes.max()
    for i, (size, box) in enumerate(zip(sizes, boxes, strict=True), start=1):
        bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
        ruled_line = (bw > 0.6 * w and bh < 0.08 * h) or (bh > 0.6 * h and bw < 0.08 * w)
        if size >= max(0.08 * largest, 4) and not (ruled_line and n > 1):
            keep[i] = True
    if not keep.any():
        keep[1 + int(np.argmax(sizes))] = True
    mask = keep[labels]
    if mask.mean() > 0.6:
        raise ImageError("no digit found: the whole image looks like ink (a photo of "
                         "something else, or noise?)")
    # Keep the anti-aliased grey edges around the kept strokes, not just the binary mask.
    near = ndimage.binary_dilation(mask, iterations=max(1, min(h, w) // 100))
    soft = np.clip((flat - t * 0.5) / max(1 - t * 0.5, 1e-6), 0, 1) * near
    # The box holds every bit of the kept ink, faint edges included, as MNIST's box does.
    rows, cols = np.nonzero(soft > 0.1)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return soft[top:bottom, left:right], (top, bottom, left, right, inverted)


def background_map(grey: np.ndarray) -> np.ndarray:
    """A smooth estimate of the (dark) background: a morphological opening (top-hat).

    An opening with a window wider than any stroke erases the strokes and keeps what
    is large — shadows, grey paper, a lighting gradient — which is then subtracted.
    """
    from scipy import ndimage

    h, w = grey.shape
    if min(h, w) < 48:  # a small crop: lighting cannot vary across it
        rough = grey > otsu(grey)
        rest = grey[~rough]
        return np.full_like(grey, float(np.median(rest)) if rest.size else 0.0)
    size = max(15, int(0.4 * min(h, w)))
    opened = ndimage.maximum_filter(ndimage.minimum_filter(grey, size=size), size=size)
    return ndimage.uniform_filter(opened, size=size // 2)


def otsu(x: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]."""
    hist, edges = np.histogram(x, bins=64, range=(0, 1))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1e-9)
    m1 = ((hist * centres).sum() - np.cumsum(hist * centres)) / np.maximum(w1, 1e-9)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def fit_box(ink: np.ndarray) -> np.ndarray:
    """Scale so the longest side is 20 px, keeping the aspect ratio, with anti-aliasing."""
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    if max(h, w) > 4 * BOX:  # area-average big reductions first, then a smooth filter
        image = image.reduce(max(1, max(h, w) // (2 * BOX)))
    out = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    out = np.clip(out, 0, None)
    # MNIST strokes are saturated in their core: scale so that the bright part of the ink
    # (not one hot pixel) reaches 1.
    inked = out[out > 0.1 * out.max()] if out.max() > 0 else out
    peak = float(np.percentile(inked, 80)) if inked.size else 0.0
    return np.clip(out / peak, 0, 1) if peak > 0 else out


# Stroke width relative to the digit's size (twice the mean ridge depth of the ink ÷ the
# box side) as measured on the ink crop of real t10k digits drawn large: 10th-90th
# percentile 0.064-0.144, median 0.091. Outside (low, high) a stroke is brought to target.
MNIST_STROKE = (0.06, 0.09, 0.16)


def stroke_ratio(ink: np.ndarray) -> float:
    from scipy import ndimage

    mask = np.pad(ink > 0.5, 1)
    if not mask.any():
        return MNIST_STROKE[1]
    depth = ndimage.distance_transform_edt(mask)
    ridge = mask & (depth >= ndimage.maximum_filter(depth, size=3))
    return float(2.0 * depth[ridge].mean() - 1.0) / max(ink.shape)  # width on the ridge


def normalize_stroke_width(ink: np.ndarray, *, always: bool = False) -> np.ndarray:
    """Thin marker strokes and thicken hairlines towards MNIST's width (at crop scale).

    By default only strokes outside what MNIST itself contains are changed;
    ``always`` moves every digit to MNIST's median width.
    """
    from scipy import ndimage

    lo, target, hi = MNIST_STROKE
    ratio = stroke_ratio(ink)
    if not always and lo <= ratio <= hi:
        return ink
    radius = int(round(abs(ratio - target) * max(ink.shape) / 2))
    if radius < 1:
        return ink
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = xx**2 + yy**2 <= radius**2
    if ratio > target:
        out = ndimage.grey_erosion(ink, footprint=disk)
    else:
        out = ndimage.grey_dilation(np.pad(ink, radius), footprint=disk)
    if out.max() <= 0:
        return ink
    rows, cols = np.nonzero(out > 0.05)
    return out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place the ≤20×20 digit in a 28×28 frame with its centre of mass at the centre."""
    h, w = digit.shape
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    cy = float((ys * digit).sum() / total) if total else (h - 1) / 2
    cx = float((xs * digit).sum() / total) if total else (w - 1) / 2
    top = int(np.clip(round((FRAME - 1) / 2 - cy), 0, FRAME - h))
    left = int(np.clip(round((FRAME - 1) / 2 - cx), 0, FRAME - w))
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[top:top + h, left:left + w] = digit
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
