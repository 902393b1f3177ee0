"""Pen strokes from a real MNIST digit, for driving the drawing page like a person would.

The digit is upscaled, thresholded and thinned to a one-pixel skeleton (Zhang–Suen); the
skeleton's pixels are then ordered into paths, from the stroke ends inwards, and scaled
to the canvas. Drawing those paths with a round pen gives back the digit's shape.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NEIGHBOURS = ((-1, 0), (0, 1), (1, 0), (0, -1), (-1, 1), (1, 1), (1, -1), (-1, -1))


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang–Suen thinning of a boolean image to a one-pixel-wide skeleton."""
    img = mask.astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = np.pad(img, 1)
            p2, p3, p4, p5 = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            p6, p7, p8, p9 = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = sum(ring[:8])
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8) for i in range(8))
            if step == 0:
                c = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                c = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if remove.any():
                img[remove] = 0
                changed = True
    return img.astype(bool)


def trace(skeleton: np.ndarray, min_length: int = 4) -> list[list[tuple[int, int]]]:
    """Order skeleton pixels into paths (row, col): ends first, loops last, gaps closed."""
    pixels = set(zip(*np.nonzero(skeleton), strict=True))
    todo = set(pixels)

    def around(p: tuple[int, int], within: set) -> list[tuple[int, int]]:
        return [(p[0] + dr, p[1] + dc) for dr, dc in NEIGHBOURS
                if (p[0] + dr, p[1] + dc) in within]

    paths = []
    while todo:
        ends = [p for p in todo if len(around(p, todo)) <= 1]
        start = min(ends) if ends else min(todo)
        # Start from a pixel already drawn next to it, so that branches stay joined.
        joined = around(start, pixels - todo)
        path = joined[:1] + [start]
        todo.discard(start)
        while True:
            nxt = around(path[-1], todo)  # NEIGHBOURS lists the 4-neighbours first
            if not nxt:
                break
            path.append(nxt[0])
            todo.discard(nxt[0])
        # Close a loop or meet a junction drawn before.
        last = [q for q in around(path[-1], pixels - todo) if q not in path[-4:]]
        path += last[:1]
        if len(path) >= min_length:
            paths.append(path)
    return paths


def digit_strokes(digit: np.ndarray, size: float, *, upscale: int = 4,
                  step: int = 2) -> list[list[tuple[float, float]]]:
    """Pen paths (x, y) in a ``size``×``size`` box that redraw the 28×28 ``digit``."""
    side = 28 * upscale
    big = np.asarray(Image.fromarray(np.asarray(digit, np.uint8)).resize(
        (side, side), Image.Resampling.BILINEAR))
    paths = trace(thin(big > 110))
    scale = size / side
    out = []
    for path in paths:
        kept = path[::step] + ([path[-1]] if (len(path) - 1) % step else [])
        out.append([((c + 0.5) * scale, (r + 0.5) * scale) for r, c in kept])
    return out
