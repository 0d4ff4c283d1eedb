"""Layout-tagged tensors: each ONNX value is held as a physical tensor plus a permutation of its logical axes.

``Value(t, perm)`` means ``t == tf.transpose(logical, perm)``: physical axis ``j`` holds logical (ONNX) axis
``perm[j]``; ``perm=None`` is the identity. Transpose nodes only change the tag, convolutions and pools want
channels-last (``(0, 2, 3, 1)`` for 2-D) and leave their result so, and layout-agnostic ops (elementwise, BN,
reductions, Concat/Softmax/Slice/Pad axes, Squeeze) keep it. So an NCHW graph runs NHWC on CPU with no
transpose pair around every convolution, and a Keras kernel (HWIO) that tf2onnx transposes to OIHW reaches
``tf.nn.convolution`` untransposed. Anything else asks for ``logical()``, which transposes back once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...imports import import_tensorflow

tf = import_tensorflow()

Perm = tuple[int, ...]


def inverse(perm: Sequence[int]) -> Perm:
    result = [0] * len(perm)
    for j, axis in enumerate(perm):
        result[axis] = j
    return tuple(result)


def is_identity(perm: Sequence[int] | None) -> bool:
    return perm is None or all(j == a for j, a in enumerate(perm))


def channels_last(rank: int) -> Perm:
    """(N, C, spatial...) logical -> (N, spatial..., C) physical."""
    return (0, *range(2, rank), 1)


class Value:
    """A tensor with its layout tag (see the module docstring)."""

    __slots__ = ("t", "perm")

    def __init__(self, t: Any, perm: Sequence[int] | None = None) -> None:
        self.t = t
        self.perm: Perm | None = None if is_identity(perm) else tuple(perm)  # type: ignore[arg-type]

    @property
    def rank(self) -> int:
        return len(self.t.shape)

    @property
    def dtype(self) -> Any:
        return self.t.dtype

    def physical_axis(self, axis: int) -> int:
        """Where logical ``axis`` (negative allowed) lives in the physical tensor."""
        axis = axis % self.rank if self.rank else 0
        return axis if self.perm is None else self.perm.index(axis)

    def logical(self) -> Any:
        """The tensor in ONNX axis order."""
        return self.t if self.perm is None else tf.transpose(self.t, inverse(self.perm))

    def to(self, perm: Sequence[int] | None) -> Any:
        """The physical tensor laid out as ``perm`` (one transpose at most)."""
        current = self.perm or tuple(range(self.rank))
        target = tuple(perm) if perm is not None else tuple(range(self.rank))
        if current == target:
            return self.t
        inv = inverse(current)
        return tf.transpose(self.t, [inv[a] for a in target])

    def logical_shape(self) -> Any:
        """The dynamic logical shape as an int64 tensor."""
        shape = tf.shape(self.t, out_type=tf.int64)
        return shape if self.perm is None else tf.gather(shape, inverse(self.perm))

    def static_logical_shape(self) -> list[int | None]:
        dims = list(self.t.shape)
        return dims if self.perm is None else [dims[j] for j in inverse(self.perm)]


def drop_axes(perm: Perm | None, axes: Sequence[int]) -> Perm | None:
    """The tag after removing logical ``axes`` (reductions without keepdims, Squeeze)."""
    if perm is None:
        return None
    removed = set(axes)
    return tuple(a - sum(1 for r in removed if r < a) for a in perm if a not in removed)


def broadcast(values: Sequence[Value | None]) -> tuple[list[Any], Perm | None]:
    """Physical tensors of ``values`` in one common layout for numpy-style broadcasting, and that layout.

    The layout is that of the first highest-rank input; lower-rank inputs (biases, scalars) are first given the
    full rank logically (ONNX aligns trailing axes) and then laid out the same way.
    """
    present = [v for v in values if v is not None]
    rank = max(v.rank for v in present)
    target = next((v.perm for v in present if v.rank == rank and v.perm is not None), None)
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif v.rank == rank:
            out.append(v.to(target))
        elif target is None:
            out.append(v.t if v.perm is None else v.logical())
        else:
            logical = v.logical()
            if v.rank == 0:
                out.append(logical)
                continue
            full = tf.reshape(logical, [1] * (rank - v.rank) + _dims(logical))
            out.append(tf.transpose(full, target))
    return out, target


def _dims(t: Any) -> list[Any]:
    static = list(t.shape)
    if all(d is not None for d in static):
        return [int(d) for d in static]
    dynamic = tf.shape(t)
    return [d if d is not None else dynamic[i] for i, d in enumerate(static)]
