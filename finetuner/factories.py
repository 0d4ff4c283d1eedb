"""``package.module:factory`` names: how the command line and the Labeler name a Python object to build.

One rule for models (``finetuner.cli._specs``) and tokenizers (``finetuner.labeler.text``): the attribute is
called without arguments when it is a factory, and used as it is when it already is the wanted object.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["from_factory"]


def from_factory(spec: str, what: str, is_product: Callable[[Any], bool]) -> Any:
    """The object that ``spec`` (``package.module:attribute``) names: ``attribute()`` when it is callable and not
    itself a product (``is_product``: e.g. a model, which is callable too), else ``attribute``.

    Raises ValueError naming ``what`` and ``spec`` when the module or the attribute cannot be imported.
    """
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {what} {spec!r}: {exc}") from exc
    return factory() if callable(factory) and not is_product(factory) else factory
