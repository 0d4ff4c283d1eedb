"""Converters, one module per op family; importing this package registers them all."""

from . import attention, conv, elementwise, index, linear, loss, math, norm, recurrent, reduce, resize, shape  # noqa: F401
