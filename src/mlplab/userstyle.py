"""Realistic user-style images made from real MNIST digits.

Each style turns a 28×28 white-on-black t10k digit into the bytes of an image file as a
person would produce it: a photo of paper, a canvas export, a scan… The strokes are
upscaled smoothly (so they look drawn, not pixelated) and placed, sized, lit and
compressed differently each time.

The test suite measures :mod:`mlplab.preprocess`'s accuracy in every style with them, and
``mlplab bench predict`` its time per image on the same kinds of image.
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


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the one-pixel centre line of a binary shape (the pen's path)."""
    m = mask.astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            p = np.pad(m, 1)
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2],
                 p[1:-1, :-2], p[:-2, :-2]]  # P2..P9, clockwise from north
            count = sum(n)
            transitions = sum((n[i] == 0) & (n[(i + 1) % 8] == 1) for i in range(8))
            if step == 0:
                side = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                side = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            drop = (m == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if drop.any():
                m[drop] = 0
                changed = True
        if not changed:
            return m.astype(bool)


def pen_coverage(digit: np.ndarray, size: int, width: float) -> np.ndarray:
    """The digit redrawn along its centre line with a pen ``width`` (fraction of size) wide."""
    work = 140
    path = skeleton(coverage(digit, work) > 0.4)
    dist = ndimage.distance_transform_edt(~path)
    radius = width * work / 2
    line = np.clip(radius + 0.5 - dist, 0, 1).astype(np.float32)
    img = Image.fromarray(line, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img), 0, 1)


def rotate(cov: np.ndarray, degrees: float) -> np.ndarray:
    img = Image.fromarray(cov.astype(np.float32), mode="F")
    return np.asarray(img.rotate(degrees, Image.Resampling.BICUBIC), dtype=np.float32)


def perspective(img: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """A slightly tilted camera: each corner moves by up to ``amount`` of the size."""
    w, h = img.size
    jitter = rng.uniform(-amount, amount, 8) * np.array([w, h] * 4)
    src = np.array([0, 0, w, 0, w, h, 0, h], float) + jitter
    dst = np.array([0, 0, w, 0, w, h, 0, h], float)
    a = []
    b = []
    for (x, y), (u, v) in zip(dst.reshape(4, 2), src.reshape(4, 2), strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    coeffs = np.linalg.solve(np.array(a), np.array(b))
    # The page goes on beyond the frame: sample outside it as its nearest edge.
    margin = int(amount * max(w, h)) + 2
    padded = Image.fromarray(np.pad(np.asarray(img), [(margin, margin), (margin, margin)] +
                                    [(0, 0)] * (np.asarray(img).ndim - 2), mode="edge"))
    # Output (x, y) samples padded (u + margin, v + margin).
    c = coeffs
    moved = (c[0] + margin * c[6], c[1] + margin * c[7], c[2] + margin,
             c[3] + margin * c[6], c[4] + margin * c[7], c[5] + margin, c[6], c[7])
    return padded.transform(img.size, Image.Transform.PERSPECTIVE, moved,
                            Image.Resampling.BICUBIC)


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
    cov = pen_coverage(d, size, width=rng.uniform(0.012, 0.03))  # a fine pen, a big digit
    cov = place((size + 100, size + 100), cov, rng, centred=True)
    return encode(compose(cov, 0.98 + paper_noise(cov.shape, rng, 0.01), 0.05), "JPEG",
                  quality=90)


def felt_tip(d, rng):
    size = int(rng.integers(200, 400))
    cov = pen_coverage(d, size, width=rng.uniform(0.05, 0.12))
    cov = place((size + 80, size + 80), cov, rng)
    return encode(compose(cov, 1.0, 0.1))


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


def chalkboard(d, rng):
    size = int(rng.integers(250, 450))
    cov = place((size + 150, size + 150), coverage(d, size), rng)
    grain = np.clip(rng.normal(0.85, 0.2, cov.shape), 0, 1)  # chalk leaves gaps
    board = np.array([0.16, 0.27, 0.2], np.float32) + paper_noise(cov.shape, rng, 0.03)[..., None]
    smudge = ndimage.gaussian_filter(rng.random(cov.shape), 25)[..., None] * 0.3
    return encode(compose(cov * grain, board + smudge, 0.92), "JPEG", quality=80)


def sticky_note(d, rng):
    size = int(rng.integers(250, 400))
    cov = place((size + 120, size + 120), coverage(d, size), rng)
    h, w = cov.shape
    paper = np.ones((h, w, 3), np.float32) * np.array([0.98, 0.92, 0.45], np.float32)
    yy = np.mgrid[0:h, 0:w][0] / h
    paper *= (0.75 + 0.25 * yy)[..., None]  # the shadow of the curl at the top
    ink = np.array([0.05, 0.1, 0.45], np.float32)
    return encode(compose(cov, paper + paper_noise(cov.shape, rng, 0.02)[..., None], ink),
                  "JPEG", quality=75)


def squared_paper(d, rng):
    size = int(rng.integers(300, 420))
    cov = place((size + 100, size + 100), coverage(d, size), rng, centred=True)
    h, w = cov.shape
    paper = np.ones((h, w, 3), np.float32) * 0.97
    step = int(rng.integers(25, 45))
    colour = np.array([0.6, 0.7, 0.85], np.float32)
    paper[int(rng.integers(0, step))::step] = colour
    paper[:, int(rng.integers(0, step))::step] = colour
    return encode(compose(cov, paper, np.array([0.05, 0.05, 0.1], np.float32)), "JPEG",
                  quality=85)


def blurry_photo(d, rng):
    size = int(rng.integers(300, 500))
    cov = place((size + 200, size + 200), coverage(d, size), rng)
    pixels = ndimage.gaussian_filter(compose(cov, 0.85, 0.2), rng.uniform(3, 8))
    pixels = pixels + rng.normal(0, 0.03, pixels.shape)
    return encode(pixels, "JPEG", quality=int(rng.integers(40, 80)))


def phone_photo(d, rng):
    """Tilted camera, vignetting, a shadow across the page, colour cast, noise, EXIF."""
    size = int(rng.integers(350, 700))
    h, w = 1200, 900
    cov = place((h, w), rotate(coverage(d, size), rng.uniform(-8, 8)), rng)
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1 - 0.35 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2) * 2
    edge = rng.uniform(0.2, 0.8) * w + (yy - h / 2) * rng.uniform(-0.5, 0.5)
    shadow = np.where(xx < edge, rng.uniform(0.6, 0.85), 1.0)  # the phone's shadow
    shadow = ndimage.uniform_filter(shadow, int(rng.integers(21, 151)))
    light = (vignette * shadow)[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
    ink = np.array([0.12, 0.12, 0.16], np.float32)
    pixels = compose(cov, 0.9 * light, ink * light) + rng.normal(0, 0.025, (h, w, 1))
    img = perspective(Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)), rng,
                      0.05)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated: "rotate 90° counter-clockwise to view"
    buf = io.BytesIO()
    img.transpose(Image.Transpose.ROTATE_270).save(buf, format="JPEG", quality=80,
                                                   exif=exif.tobytes())
    return buf.getvalue()


def scanned_page_small_digit(d, rng):
    cov = place((1400, 1000), coverage(d, int(rng.integers(50, 110))), rng)
    pixels = compose(cov, 0.96 + paper_noise(cov.shape, rng, 0.01), 0.15)
    return encode(pixels, "JPEG", quality=85)


def web_canvas(d, rng):
    """A drawing app's opaque export: a round white brush on black, any size or place."""
    size = int(rng.integers(120, 260))
    cov = pen_coverage(d, size, width=rng.uniform(0.08, 0.16))
    return encode(place((280, 280), cov, rng))


def coloured_on_transparent(d, rng):
    size = int(rng.integers(200, 360))
    cov = place((size + 40, size + 40), pen_coverage(d, size, width=rng.uniform(0.06, 0.12)),
                rng)
    rgba = np.zeros(cov.shape + (4,), np.float32)
    rgba[..., :3] = rng.uniform(0, 1, 3)  # any brush colour
    rgba[..., 3] = cov
    return encode(rgba)


def inverted_mnist_png(d, rng):
    return encode(1 - d / 255.0)


def bitmap_1bit_bmp(d, rng):
    size = int(rng.integers(60, 200))
    cov = place((size + 30, size + 30), coverage(d, size), rng)
    img = Image.fromarray(((1 - cov) * 255).astype(np.uint8)).convert("1", dither=None)
    buf = io.BytesIO()
    img.save(buf, format="BMP")
    return buf.getvalue()


def grey_alpha_tiff(d, rng):
    size = int(rng.integers(150, 300))
    cov = place((size + 40, size + 40), coverage(d, size), rng)
    la = np.stack([np.zeros_like(cov), cov], -1)  # black ink as alpha, grey+alpha mode
    img = Image.fromarray((la * 255).astype(np.uint8), mode="LA")
    buf = io.BytesIO()
    img.save(buf, format="TIFF", compression="tiff_deflate")
    return buf.getvalue()


def animated_gif(d, rng):
    size = 200
    first = compose(place((size, size), coverage(d, 150), rng), 1.0, 0.0)
    frames = [Image.fromarray((first * 255).astype(np.uint8)),
              Image.fromarray(np.full((size, size), 255, np.uint8))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def slanted_and_squeezed(d, rng):
    """A narrow, slanted hand: aspect ratio and slant unlike the MNIST writer's."""
    size = int(rng.integers(250, 400))
    cov = coverage(d, size)
    squeeze = rng.uniform(0.7, 1.0)
    img = Image.fromarray(cov, mode="F").resize((int(size * squeeze), size),
                                                Image.Resampling.BICUBIC)
    cov = rotate(np.asarray(img), rng.uniform(-6, 6))
    cov = place((size + 120, size + 120), cov, rng)
    return encode(compose(cov, 0.95, 0.1), "JPEG", quality=85)


def round_wide_hand(d, rng):
    """A round, wide hand on paper: digits 1.15-1.5 times as wide as the MNIST writer's
    and a little squat, photographed."""
    size = int(rng.integers(200, 320))
    cov = coverage(d, size)
    wide, squat = rng.uniform(1.15, 1.5), rng.uniform(0.85, 1.0)
    img = Image.fromarray(cov, mode="F").resize((int(size * wide), int(size * squat)),
                                                Image.Resampling.BICUBIC)
    cov = place((int(size * 1.2) + 80, int(size * 1.6) + 80), np.asarray(img), rng)
    paper = 0.93 + paper_noise(cov.shape, rng, 0.01)
    return encode(compose(cov, paper, 0.15), "JPEG", quality=int(rng.integers(75, 92)))


def boxed_or_underlined(d, rng):
    """A digit written in a form's box, or underlined: a line that is not part of it."""
    from PIL import ImageDraw

    size = int(rng.integers(220, 380))
    side = int(size * rng.uniform(1.6, 2.0))
    cov = place((side, side), coverage(d, size), rng,
                centred=True)
    img = Image.fromarray((cov * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    top = left = (side - size) // 2
    pad = int(size * rng.uniform(0.08, 0.25))
    width = max(2, int(size * rng.uniform(0.02, 0.05)))
    if rng.random() < 0.5:
        draw.rectangle([left - pad, top - pad, left + size + pad, top + size + pad],
                       outline=255, width=width)
    else:
        y = top + size + pad // 2
        draw.line([left - pad, y, left + size + pad, y + int(rng.integers(-8, 9))], fill=255,
                  width=width)
    return encode(compose(np.asarray(img) / 255.0, 0.96, 0.08), "JPEG", quality=85)


def hard_shadow_ballpoint(d, rng):
    """A ballpoint digit photographed with a hand's or ruler's hard shadow falling across
    it (and part of the page): half the digit is on darker paper, the shadow's edge is
    straight and as dark as faint ink, the camera a little tilted."""
    h, w = int(rng.integers(700, 1000)), int(rng.integers(600, 900))
    size = int(rng.uniform(0.3, 0.55) * min(h, w))
    cov = place((h, w), rotate(pen_coverage(d, size, rng.uniform(0.04, 0.08)),
                               rng.uniform(-6, 6)), rng)
    rows, cols = np.nonzero(cov > 0.5)
    cy, cx = rows.mean(), cols.mean()
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    side = (yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle) > rng.uniform(-0.2, 0.2) * size
    shadow = ndimage.uniform_filter(np.where(side, rng.uniform(0.5, 0.7), 1.0),
                                    int(rng.integers(3, 15)))
    light = shadow * (0.85 + 0.15 * xx / w)
    pixels = compose(cov, 0.92 * light, 0.15 * light) + rng.normal(0, 0.015, (h, w))
    img = perspective(Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)), rng,
                      0.04)
    return encode(np.asarray(img) / 255.0, "JPEG", quality=int(rng.integers(75, 90)))


def sheet_on_desk(d, rng):
    """A sheet of paper photographed on a desk, a little rotated: the desk shows around it
    (or, half the time, a rotated photo's black corners); the sheet is the paper."""
    size = int(rng.integers(250, 400))
    side = int(size * rng.uniform(1.6, 2.2))
    cov = place((side, side), rotate(pen_coverage(d, size, rng.uniform(0.05, 0.1)),
                                     rng.uniform(-5, 5)), rng, centred=True)
    paper = np.float32(rng.uniform(0.8, 0.95)) * np.array([1.0, 0.97, 0.9], np.float32)
    sheet = Image.fromarray((compose(cov, paper, np.array([0.1, 0.1, 0.15], np.float32))
                             * 255).astype(np.uint8))
    angle = float(rng.uniform(-12, 12))
    if rng.random() < 0.5:
        desk = tuple(int(c) for c in rng.integers(20, 140, 3))
        sheet = sheet.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=desk)
        frame = Image.new("RGB", (int(sheet.width * 1.15), int(sheet.height * 1.15)), desk)
        frame.paste(sheet, ((frame.width - sheet.width) // 2, (frame.height - sheet.height) // 2))
    else:
        frame = sheet.rotate(angle, Image.Resampling.BILINEAR)  # black corners
    pixels = np.asarray(frame, np.float32) / 255 + rng.normal(0, 0.015, (frame.height,
                                                                      frame.width, 1))
    return encode(pixels, "JPEG", quality=int(rng.integers(70, 90)))


def ruled_margin_touching(d, rng):
    """A digit on ruled paper with a red margin line, sitting on or crossing a ruled line:
    the lines and the margin join into one comb, the digit touches it."""
    h, w = int(rng.integers(450, 700)), int(rng.integers(450, 700))
    spacing = int(rng.integers(45, 80))
    size = int(spacing * rng.uniform(1.3, 2.2))
    first = int(rng.integers(10, spacing))
    lines = np.arange(first, h, spacing)
    line = int(rng.choice(lines[(lines > size) & (lines < h - size // 2 - 5)]))
    top = line - size + int(size * rng.uniform(0.0, 0.5))
    left = int(rng.integers(70, w - size))
    cov = np.zeros((h, w), np.float32)
    cov[top:top + size, left:left + size] = pen_coverage(d, size, rng.uniform(0.06, 0.1))
    paper = np.ones((h, w, 3), np.float32) * np.array([0.98, 0.98, 0.94], np.float32)
    for y in lines:
        paper[y:y + int(rng.integers(1, 4))] = np.array([0.62, 0.72, 0.9], np.float32)
    margin = int(rng.integers(25, 60))
    paper[:, margin:margin + 2] = np.array([0.9, 0.45, 0.45], np.float32)
    pixels = compose(cov, paper, np.array([0.1, 0.12, 0.3], np.float32))
    return encode(pixels + rng.normal(0, 0.015, (h, w, 1)), "JPEG", quality=85)


def note_on_desk(d, rng):
    """A sticky note (or a card) on a desk, photographed from above: the note takes 15-50%
    of the frame and is turned up to 20°; the rest is a darker desk of any colour, grained, its
    corners darker still."""
    note = int(rng.integers(220, 360))
    cov = place((note, note), pen_coverage(d, int(note * rng.uniform(0.5, 0.75)),
                                           rng.uniform(0.05, 0.11)), rng, centred=True)
    colour = np.array([(0.99, 0.9, 0.4), (0.95, 0.65, 0.78), (0.62, 0.9, 0.65),
                       (0.55, 0.8, 0.97), (0.97, 0.97, 0.95)][int(rng.integers(5))], np.float32)
    card = Image.fromarray((compose(cov, colour, np.array([0.1, 0.1, 0.3], np.float32)) * 255)
                           .astype(np.uint8)).convert("RGBA")
    card = card.rotate(float(rng.uniform(-20, 20)), Image.Resampling.BICUBIC, expand=True)
    side = max(card.width + 2, int(note / np.sqrt(rng.uniform(0.15, 0.5))))
    # A wooden desk's grain: streaks along one direction, up to ±15 % of its reflectance.
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (side, side)), (1, 15))
    grain *= rng.uniform(0, 0.15) / (grain.std() + 1e-9)
    wood = np.array(rng.uniform(0.1, 0.5, 3), np.float32)
    desk = Image.fromarray((np.clip(wood * (1 + grain[..., None]) +
                                    paper_noise((side, side), rng, 0.03)[..., None], 0, 1)
                            * 255).astype(np.uint8))
    desk.paste(card, (int(rng.integers(0, side - card.width)),
                      int(rng.integers(0, side - card.height))), card)
    # The phone's lens darkens the frame's corners (a vignette, up to 45 %).
    yy, xx = (np.mgrid[:side, :side] - (side - 1) / 2) / (side / 2)
    vignette = (1 - rng.uniform(0, 0.45) * (yy**2 + xx**2) / 2)[..., None]
    pixels = np.asarray(desk, np.float32) / 255 * vignette + \
        rng.normal(0, 0.015, (side, side, 1))
    return encode(pixels, "JPEG", quality=int(rng.integers(70, 90)))


def notes_app_screenshot(d, rng):
    """A digit drawn with a finger in a phone's notes app, sent as a full screenshot: the
    status bar's clock and battery icon, the app's title and a toolbar's round buttons
    are on it too; light or dark mode, a black, grey or coloured brush."""
    from PIL import ImageDraw, ImageFont

    w, h = 1080, int(rng.choice([1920, 2340, 2400]))
    dark = rng.random() < 0.3
    back, fore = (30, 225) if dark else (255, 20)
    screen = Image.new("L", (w, h), back)
    draw = ImageDraw.Draw(screen)
    draw.text((40, 20), f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}", fill=fore,
              font=ImageFont.load_default(size=36))
    draw.rectangle((w - 120, 28, w - 50, 56), outline=fore, width=3)  # the battery
    draw.rectangle((w - 115, 33, w - 115 + int(rng.integers(10, 60)), 51), fill=fore)
    draw.text((40, 120), "Notes", fill=fore, font=ImageFont.load_default(size=60))
    bar = h - int(rng.integers(160, 240))
    draw.line((0, bar, w, bar), fill=(80 if dark else 200), width=2)
    for i in range(5):
        x = 100 + 200 * i
        draw.ellipse((x, bar + 50, x + 70, bar + 120), outline=fore, width=5)
    side = int(w * rng.uniform(0.45, 0.8))
    cov = np.zeros((h, w), np.float32)
    top, left = int(rng.integers(300, bar - side - 20)), int(rng.integers(20, w - side - 20))
    cov[top:top + side, left:left + side] = pen_coverage(d, side, rng.uniform(0.06, 0.12))
    ink = fore / 255 if rng.random() < 0.7 else (0.8 if dark else 0.25)
    return encode(compose(cov, np.asarray(screen, np.float32) / 255, ink), "PNG")


def dark_ruled_notebook(d, rng):
    """A notebook page photographed close up in good light: its ruled lines and red
    margin as dark as a thin ballpoint's (or darker than a pencil's) strokes, the digit
    written on a line, between two others; the page fills the frame, a little turned."""
    h, w = 600, int(rng.integers(600, 900))
    size = int(rng.integers(110, 170))
    spacing = int(size * rng.uniform(1.1, 1.5))
    cov = np.zeros((h, w), np.float32)
    base = int(rng.integers(h // 2, h // 2 + spacing))  # the line the digit sits on
    left = int(rng.integers(w // 4, w - size - 20))
    top = base - size + int(rng.integers(0, size // 8))
    cov[top:top + size, left:left + size] = pen_coverage(d, size, rng.uniform(0.05, 0.08))
    lines = np.zeros((h, w), np.float32)
    thick = int(rng.integers(2, 5))
    for y in range(base % spacing, h, spacing):
        lines[y:y + thick] = 1
    margin = int(rng.integers(20, max(21, left - size // 2)))
    lines[:, margin:margin + thick] = 2  # 2: the red margin
    lines = np.asarray(Image.fromarray(lines).rotate(float(rng.uniform(-4, 4)),
                                                     Image.Resampling.NEAREST))
    paper = np.ones((h, w, 3), np.float32) * np.array([0.95, 0.95, 0.92], np.float32)
    paper[lines == 1] = np.array([0.35, 0.45, 0.7], np.float32) * rng.uniform(0.8, 1.2)
    paper[lines == 2] = np.array([0.75, 0.25, 0.3], np.float32)
    ink = np.array([0.1, 0.12, 0.35] if rng.random() < 0.7 else [0.35, 0.35, 0.37], np.float32)
    light = np.linspace(rng.uniform(0.75, 0.9), 1.0, w, dtype=np.float32)[None, :, None]
    pixels = compose(cov, paper, ink) * light + rng.normal(0, 0.012, (h, w, 1))
    return encode(pixels, "JPEG", quality=int(rng.integers(75, 92)))


def drawing_app_screenshot(d, rng):
    """A screenshot of a digit-drawing web app: a window's title bar and buttons around
    the canvas, which is black with a white brush in a light window, or white with a
    black brush in a dark one."""
    from PIL import ImageDraw

    w, h = [(1280, 800), (1440, 900), (1024, 768)][int(rng.integers(3))]
    light = rng.random() < 0.6
    window = Image.new("L", (w, h), 238 if light else 40)
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, w, 36), fill=215 if light else 25)
    for i in range(int(rng.integers(2, 5))):
        draw.rounded_rectangle((30 + 130 * i, 56, 140 + 130 * i, 92), radius=8,
                               fill=int(rng.integers(90, 190)))
    side = int(min(w, h - 120) * rng.uniform(0.5, 0.8))
    x0 = int(rng.integers(40, w - side - 40))
    y0 = int(rng.integers(110, h - side - 10))
    size = int(side * rng.uniform(0.75, 0.95))  # the digit drawn inside the canvas
    cov = np.zeros((h, w), np.float32)
    cov[y0:y0 + side, x0:x0 + side] = place(
        (side, side), coverage(d, size, thickness=int(rng.integers(0, 3))), rng)
    canvas = np.asarray(window, np.float32) / 255
    canvas[y0:y0 + side, x0:x0 + side] = 0.0 if light else 1.0
    return encode(compose(cov, canvas, 1.0 if light else 0.0), "PNG")


def sheet_in_uneven_light(d, rng):
    """A sheet on a dark desk, lit from one side: its far side gets half the light of its
    near side or less, so much of the paper is as dark as the light falls off, not as
    the desk."""
    size = int(rng.integers(200, 320))
    side = int(size * rng.uniform(1.8, 2.4))
    cov = place((side, side), pen_coverage(d, size, rng.uniform(0.05, 0.1)), rng,
                centred=True)
    sheet = Image.fromarray((compose(cov, 0.92, 0.1) * 255).astype(np.uint8))
    sheet = sheet.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BICUBIC, expand=True,
                         fillcolor=int(rng.integers(25, 90)))
    frame = np.full((int(sheet.height * 1.2), int(sheet.width * 1.2)), sheet.getpixel((0, 0)),
                    np.float32)
    y, x = (frame.shape[0] - sheet.height) // 2, (frame.shape[1] - sheet.width) // 2
    frame[y:y + sheet.height, x:x + sheet.width] = np.asarray(sheet, np.float32)
    yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]] / max(frame.shape)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    lit = frame / 255 * (1.0 - rng.uniform(0.5, 0.65) * ramp)
    return encode(lit + rng.normal(0, 0.012, lit.shape), "JPEG", quality=int(rng.integers(75, 92)))


def notebook_digit_on_a_line(d, rng, *, squared: bool = False):
    """A photo of a ruled (or squared) notebook page, the digit sitting on a line as people
    write, one to two lines tall; the ruling pale to dark, a red margin on ruled pages."""
    spacing = int(rng.integers(28, 60))
    size = int(spacing * rng.uniform(1.0, 1.9))
    w = int(rng.integers(5, 10) * spacing)
    h = int(w * rng.uniform(0.7, 1.3))
    cov = pen_coverage(d, size, rng.uniform(0.05, 0.1))
    bottom = int(np.nonzero(cov > 0.5 * cov.max())[0].max())
    lines = np.arange(int(rng.integers(spacing // 2, spacing)), h, spacing)
    below = lines[(lines - bottom >= 2) & (lines + 2 < h)]
    base = int(rng.choice(below[:max(1, len(below) - 1)]))
    top = base - bottom + int(rng.integers(-2, 2))
    left = int(rng.integers(spacing, max(spacing + 1, w - size - spacing // 2)))
    ink_cov = np.zeros((h, w), np.float32)
    t0, l0 = max(0, top), max(0, left)
    part = cov[t0 - top:, l0 - left:][:h - t0, :w - l0]
    ink_cov[t0:t0 + part.shape[0], l0:l0 + part.shape[1]] = part
    paper = np.ones((h, w, 3), np.float32) * np.array([0.96, 0.96, 0.93], np.float32)
    dark = rng.uniform(0.15, 0.55)
    colour = np.array([0.55, 0.65, 0.9]) * (1 - dark) + np.array([0.2, 0.3, 0.6]) * dark
    width = int(rng.integers(1, 3))
    for y in lines:
        paper[y:y + width] = colour
    if squared:
        for x in range(int(rng.integers(0, spacing)), w, spacing):
            paper[:, x:x + width] = colour
    elif rng.random() < 0.7:
        x = int(rng.integers(spacing // 3, spacing - 4))
        paper[:, x:x + 2] = np.array([0.85, 0.35, 0.35])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.88 + rng.uniform(-0.1, 0.1) * (xx / w - 0.5) + rng.uniform(-0.1, 0.1) * (yy / h - 0.5)
    paper = paper * light[..., None] + paper_noise((h, w), rng, 0.015)[..., None]
    ink = np.array([0.1, 0.12, 0.4]) if rng.random() < 0.5 else np.array([0.1, 0.1, 0.1])
    return encode(compose(ink_cov, paper, ink), "JPEG", quality=int(rng.integers(70, 92)))


def squared_notebook_digit_on_a_line(d, rng):
    return notebook_digit_on_a_line(d, rng, squared=True)


def hard_shadow_across_page(d, rng):
    """A phone's or a hand's sharp shadow across the page, often over much of it and part
    of the digit (the lit paper, not the ink, is then the brightest departure from the
    mostly shadowed border)."""
    size = int(rng.integers(200, 500))
    h, w = int(size * rng.uniform(1.4, 2.2)), int(size * rng.uniform(1.4, 2.2))
    cov = place((h, w), pen_coverage(d, size, rng.uniform(0.05, 0.1)), rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    px, py = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    shade = ((xx - px) * np.cos(angle) + (yy - py) * np.sin(angle)) > 0
    shade = ndimage.gaussian_filter(shade.astype(np.float32), rng.uniform(1, 4))
    light = (1 - rng.uniform(0.35, 0.6) * shade)[..., None]
    paper = np.array([0.95, 0.94, 0.9]) * light + paper_noise((h, w), rng, 0.015)[..., None]
    return encode(compose(cov, paper, np.array([0.08, 0.1, 0.3]) * light), "JPEG",
                  quality=int(rng.integers(70, 92)))


STYLES: dict[str, Style] = {f.__name__: f for f in (
    dark_on_white_large, offcentre_big_canvas, transparent_canvas, white_on_transparent,
    jpeg_low_quality, thick_marker, thin_pen, coloured_ink, tiny_crop, grey_noisy_paper,
    uneven_lighting, lined_paper, pencil, rotated_exif, cmyk_jpeg, palette_gif, png_16bit,
    webp, mnist_png, felt_tip, chalkboard, sticky_note, squared_paper, blurry_photo,
    phone_photo, scanned_page_small_digit, web_canvas, coloured_on_transparent,
    inverted_mnist_png, bitmap_1bit_bmp, grey_alpha_tiff, animated_gif, slanted_and_squeezed,
    round_wide_hand,
    boxed_or_underlined, hard_shadow_ballpoint, sheet_on_desk, ruled_margin_touching,
    note_on_desk, notes_app_screenshot, drawing_app_screenshot, sheet_in_uneven_light,
    dark_ruled_notebook, notebook_digit_on_a_line, squared_notebook_digit_on_a_line,
    hard_shadow_across_page)}
