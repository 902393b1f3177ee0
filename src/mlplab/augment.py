"""On-device data augmentation in JAX: random affine (shift, rotation, zoom) and elastic.

One function maps a batch of (b, 28, 28) float images and a PRNG key to augmented
images, so the fused engine can run it inside its jitted epoch and the Keras
engine can apply it to a whole epoch's array before ``fit``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from mlplab.config import TrainConfig


def _smooth(noise: jax.Array, sigma: float) -> jax.Array:
    """Gaussian-blur (b, h, w) fields with a separable kernel (elastic displacement)."""
    radius = max(1, int(3 * sigma))
    t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    k = jnp.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    pad = jnp.pad(noise, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    rows = sum(k[i] * pad[:, i:i + noise.shape[1], :] for i in range(2 * radius + 1))
    pad = jnp.pad(rows, ((0, 0), (0, 0), (radius, radius)), mode="edge")
    return sum(k[i] * pad[:, :, i:i + noise.shape[2]] for i in range(2 * radius + 1))


def augment_images(key: jax.Array, images: jax.Array, config: TrainConfig) -> jax.Array:
    """Randomly shift, rotate, zoom and elastically distort a batch of (b, 28, 28) images."""
    b, h, w = images.shape
    k_rot, k_scale, k_shift, k_el = jax.random.split(key, 4)
    angle = jax.random.uniform(k_rot, (b,), minval=-1, maxval=1) * math.radians(config.rotation)
    zoom = 1.0 + jax.random.uniform(k_scale, (b,), minval=-1, maxval=1) * config.scale
    shift = jax.random.uniform(k_shift, (b, 2), minval=-1, maxval=1) * config.shift
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                          jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
    cos, sin = jnp.cos(angle)[:, None, None], jnp.sin(angle)[:, None, None]
    inv = 1.0 / zoom[:, None, None]
    # Output pixel (y, x) samples the input at the inverse-transformed position.
    src_y = inv * (cos * yy - sin * xx) + cy - shift[:, 0, None, None]
    src_x = inv * (sin * yy + cos * xx) + cx - shift[:, 1, None, None]
    if config.elastic:
        field = jax.random.uniform(k_el, (2, b, h, w), minval=-1, maxval=1)
        sigma = 4.0
        dy = _smooth(field[0], sigma)
        dx = _smooth(field[1], sigma)
        # Normalize so that `elastic` is roughly the typical displacement in pixels.
        norm = jnp.sqrt(jnp.mean(dy**2 + dx**2, axis=(1, 2), keepdims=True)) + 1e-6
        src_y = src_y + config.elastic * dy / norm
        src_x = src_x + config.elastic * dx / norm

    def sample(img: jax.Array, sy: jax.Array, sx: jax.Array) -> jax.Array:
        return jax.scipy.ndimage.map_coordinates(img, [sy, sx], order=1, mode="constant",
                                                 cval=0.0)

    return jax.vmap(sample)(images, src_y, src_x)
