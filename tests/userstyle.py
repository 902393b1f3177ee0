"""Realistic user-style images made from real MNIST digits.

Each style turns a 28×28 white-on-black t10k digit into the bytes of an image file as a
person would produce it: a photo of paper, a canvas export, a scan… The strokes are
upscaled smoothly (so they look drawn, not pixelated) and placed, sized, lit and
compressed differently each time.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

Style = Callable[[np.ndarray, np.random.Generator], bytes]


def coverage(digit: np.ndarray, size: int, *, thickness: int = 0) -> np.ndarray:
    """Ink coverage in [0, 1] of the digit upscaled smoothly to size×size."""
    d = digit.astype(np.float32)
    if thickness > 0:
        d = ndimage.grey_dilation(d, size=(thickness + 1, thickness + 1))
    elif thickness < 0:
        d = ndimage.grey_erosion(d, size=(2, 2)) * 0.5 + d * 0.5
    img = Image.fromarray(d, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img) / 255.0, 0, 1)


def place(canvas_hw: tuple[int, int], cov: np.ndarray, rng: np.random.Generator,
          *, centred: bool = False) -> np.ndarray:
    """The coverage pasted somewhere on an empty canvas of the given size."""
    h, w = canvas_hw
    out = np.zeros((h, w), np.float32)
    ch, cw = cov.shape
    top = (h - ch) // 2 if centred else int(rng.integers(0, max(1, h - ch)))
    left = (w - cw) // 2 if centred else int(rng.integers(0, max(1, w - cw)))
    out[top:top + ch, left:left + cw] = cov
    return out


def compose(cov: np.ndarray, paper: np.ndarray | float, ink: np.ndarray | float) -> np.ndarray:
    """Paper and ink colours mixed by coverage (works for grey or RGB)."""
    if np.ndim(paper) == 3 or np.ndim(ink) == 1:
        cov = cov[..., None]
    return paper * (1 - cov) + ink * cov


def encode(pixels: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    """Float pixels in [0, 1] (grey or RGB) → encoded image bytes."""
    arr = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def paper_noise(shape: tuple[int, ...], rng: np.random.Generator, sd: float) -> np.ndarray:
    """Smooth paper texture plus sensor noise."""
    coarse = ndimage.gaussian_filter(rng.normal(0, sd, shape[:2]), 3)
    return coarse + rng.normal(0, sd / 2, shape[:2])


# ---------------------------------------------------------------- styles


def dark_on_white_large(d, rng):
    size = int(rng.integers(300, 700))
    cov = place((size + 200, size + 200), coverage(d, size), rng, centred=True)
    return encode(compose(cov, 0.97 + paper_noise(cov.shape, rng, 0.01), 0.08))


def offcentre_big_canvas(d, rng):
    cov = place((900, 1200), coverage(d, int(rng.integers(120, 260))), rng)
    return encode(compose(cov, 0.95, 0.1), "JPEG", quality=85)


def transparent_canvas(d, rng):
    size = int(rng.integers(200, 400))
    cov = place((size, size), coverage(d, int(size * 0.8)), rng, centred=True)
    rgba = np.zeros((size, size, 4), np.float32)
    rgba[..., 3] = cov  # black strokes drawn as alpha
    return encode(rgba)


def white_on_transparent(d, rng):
    size = 280
    cov = place((size, size), coverage(d, int(rng.integers(150, 260))), rng)
    rgba = np.ones((size, size, 4), np.float32)
    rgba[..., 3] = cov
    return encode(rgba)


def jpeg_low_quality(d, rng):
    size = int(rng.integers(200, 400))
    cov = place((size, size), coverage(d, int(size * 0.7)), rng)
    return encode(compose(cov, 0.92, 0.15), "JPEG", quality=int(rng.integers(8, 20)))


def thick_marker(d, rng):
    size = 320
    cov = place((size + 80, size + 80), coverage(d, size, thickness=2), rng)
    return encode(compose(cov, 1.0, 0.0))


def thin_pen(d, rng):
    size = int(rng.integers(400, 700))
    cov = coverage(d, size, thickness=-1)
    cov = np.clip((cov - 0.45) * 3, 0, 1)  # hard, thin strokes
    cov = place((size + 100, size + 100), cov, rng, centred=True)
    return encode(compose(cov, 0.98, 0.05), "JPEG", quality=90)


def coloured_ink(d, rng):
    size = int(rng.integers(250, 450))
    cov = place((size + 60, size + 60), coverage(d, size), rng)
    colours = [(0.1, 0.2, 0.75), (0.75, 0.1, 0.1), (0.1, 0.5, 0.15), (0.45, 0.1, 0.6)]
    ink = np.array(colours[int(rng.integers(len(colours)))], np.float32)
    paper = np.ones(cov.shape + (3,), np.float32) * np.array([0.98, 0.97, 0.92], np.float32)
    return encode(compose(cov, paper, ink), "JPEG", quality=80)


def tiny_crop(d, rng):
    rows, cols = np.nonzero(d > 30)
    crop = d[max(rows.min() - 1, 0):rows.max() + 2, max(cols.min() - 1, 0):cols.max() + 2]
    scale = rng.uniform(1.0, 2.0)
    h, w = crop.shape
    img = Image.fromarray(255 - crop).resize((max(4, int(w * scale)), max(4, int(h * scale))),
                                              Image.Resampling.BILINEAR)
    return encode(np.asarray(img) / 255.0)


def grey_noisy_paper(d, rng):
    size = int(rng.integers(250, 400))
    cov = place((size + 100, size + 100), coverage(d, size), rng)
    paper = 0.7 + paper_noise(cov.shape, rng, 0.06)
    return encode(compose(cov, paper, 0.15 + rng.normal(0, 0.03, cov.shape)))


def uneven_lighting(d, rng):
    size = int(rng.integers(300, 500))
    cov = place((size + 160, size + 160), coverage(d, size), rng)
    h, w = cov.shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    shade = 0.55 + 0.4 * (0.5 + 0.5 * np.cos(angle) * (xx - 0.5) * 2 + 0.5 * np.sin(angle) *
                          (yy - 0.5) * 2).clip(0, 1)
    paper = shade + paper_noise(cov.shape, rng, 0.015)
    return encode(compose(cov, paper, 0.08 * shade), "JPEG", quality=85)


def lined_paper(d, rng):
    size = 360
    cov = place((size + 120, size + 120), coverage(d, size), rng, centred=True)
    h, w = cov.shape
    paper = np.ones((h, w, 3), np.float32) * np.array([0.99, 0.99, 0.96], np.float32)
    spacing = int(rng.integers(45, 70))
    for y in range(int(rng.integers(10, spacing)), h, spacing):
        paper[y:y + 2] = np.array([0.65, 0.75, 0.92], np.float32)
    return encode(compose(cov, paper, np.array([0.1, 0.1, 0.25], np.float32)), "JPEG",
                  quality=85)


def pencil(d, rng):
    size = int(rng.integers(300, 500))
    cov = place((size + 100, size + 100), coverage(d, size), rng)
    grain = np.clip(1 - np.abs(rng.normal(0, 0.35, cov.shape)), 0, 1)
    return encode(compose(cov * grain, 0.95 + paper_noise(cov.shape, rng, 0.01), 0.45))


def rotated_exif(d, rng):
    size = 300
    cov = place((size + 60, size + 60), coverage(d, size), rng)
    upright = encode(compose(cov, 0.96, 0.1))
    img = Image.open(io.BytesIO(upright)).convert("RGB")
    stored = img.transpose(Image.Transpose.ROTATE_90)  # the camera stores it sideways …
    exif = Image.Exif()
    exif[0x0112] = 6  # … and says "rotate 90° clockwise to view"
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def cmyk_jpeg(d, rng):
    size = 300
    cov = place((size + 40, size + 40), coverage(d, size), rng)
    img = Image.fromarray((compose(cov, 0.97, 0.05) * 255).astype(np.uint8)).convert("CMYK")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def palette_gif(d, rng):
    size = 280
    cov = place((size, size), coverage(d, 220), rng)
    img = Image.fromarray((compose(cov, 1.0, 0.0) * 255).astype(np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    img.save(buf, format="GIF")
    return buf.getvalue()


def png_16bit(d, rng):
    size = 300
    cov = place((size + 50, size + 50), coverage(d, size), rng)
    arr = (compose(cov, 0.95, 0.1) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def webp(d, rng):
    size = 300
    cov = place((size + 50, size + 50), coverage(d, size), rng)
    return encode(compose(cov, 0.96, 0.08), "WEBP", quality=60)


def mnist_png(d, rng):
    return encode(d / 255.0)


STYLES: dict[str, Style] = {f.__name__: f for f in (
    dark_on_white_large, offcentre_big_canvas, transparent_canvas, white_on_transparent,
    jpeg_low_quality, thick_marker, thin_pen, coloured_ink, tiny_crop, grey_noisy_paper,
    uneven_lighting, lined_paper, pencil, rotated_exif, cmyk_jpeg, palette_gif, png_16bit,
    webp, mnist_png)}
