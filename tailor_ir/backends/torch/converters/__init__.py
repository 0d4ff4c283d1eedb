"""Converters added to onnx2torch's registry, one module per op family (importing them registers them)."""

from . import activation, compare, conv, dropout, linear, norm, recurrent, reduce, shape, slice  # noqa: F401
