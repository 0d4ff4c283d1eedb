"""Converters, one module per op family; importing this package registers them all."""

from . import conv, elementwise, linear, norm, recurrent, reduce, shape  # noqa: F401
