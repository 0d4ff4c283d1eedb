"""Default augmentations for self-supervised (instance) data: two random views of each item, in numpy."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

AugmentFn = Callable[..., Any]


def augment_vector(
    x: np.ndarray, rng: np.random.Generator, noise: float = 0.1, drop: float = 0.1
) -> np.ndarray:
    """Gaussian noise (``noise`` x the vector's std) and a dropout mask zeroing a ``drop`` fraction of values."""
    x = np.asarray(x, dtype=np.float32)
    scale = noise * (float(x.std()) or 1.0)
    mask = rng.random(x.shape) >= drop
    return ((x + rng.normal(0.0, scale, x.shape)) * mask).astype(np.float32)


def _spatial_axes(x: np.ndarray) -> tuple[int, int]:
    """The (height, width) axes of a 2-D or 3-D image: CHW when the first axis looks like channels, else HWC."""
    if x.ndim == 2:
        return 0, 1
    if x.shape[0] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
        return 1, 2
    return 0, 1


def augment_image(
    x: np.ndarray, rng: np.random.Generator, crop: float = 0.125, noise: float = 0.05
) -> np.ndarray:
    """A random crop (shift by up to ``crop`` of each side, zero-filled), a random horizontal flip and gaussian
    noise (``noise`` x the image's value range). Works on CHW, HWC and HW arrays; keeps the shape."""
    x = np.asarray(x, dtype=np.float32)
    h_axis, w_axis = _spatial_axes(x)
    out = np.zeros_like(x)
    src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for axis in (h_axis, w_axis):
        size = x.shape[axis]
        limit = int(size * crop)
        shift = int(rng.integers(-limit, limit + 1)) if limit else 0
        src[axis] = slice(max(0, shift), size + min(0, shift))
        dst[axis] = slice(max(0, -shift), size - max(0, shift))
    out[tuple(dst)] = x[tuple(src)]
    if rng.random() < 0.5:
        out = np.flip(out, axis=w_axis)
    value_range = float(x.max() - x.min()) or 1.0
    return (out + rng.normal(0.0, noise * value_range, x.shape)).astype(np.float32)


def augment_text(text: str, rng: np.random.Generator, drop: float = 0.1) -> str:
    """Drop each word with probability ``drop`` (always keeping at least one)."""
    words = text.split()
    if len(words) <= 1:
        return text
    keep = rng.random(len(words)) >= drop
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep) if k)


def default_augment(content: Any, rng: np.random.Generator) -> Any:
    """Text -> word dropout; 1-D arrays -> noise + dropout; 2-D/3-D arrays -> crop, flip and noise."""
    if isinstance(content, str):
        return augment_text(content, rng)
    array = np.asarray(content)
    if array.ndim >= 2:
        return augment_image(array, rng)
    return augment_vector(array, rng)


def with_rng(augment_fn: AugmentFn | None) -> Callable[[Any, np.random.Generator], Any]:
    """``augment_fn`` as a ``(content, rng)`` function: a user's one-argument ``augment_fn(content)`` is wrapped
    (then reproducibility is up to it); None gives :func:`default_augment`."""
    if augment_fn is None:
        return default_augment
    try:
        params = list(inspect.signature(augment_fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    if len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional):
        return augment_fn
    return lambda content, rng: augment_fn(content)
