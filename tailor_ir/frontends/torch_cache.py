"""Reuse of a torch export while the model is unchanged (trying several cuts exports once).

An entry is keyed by the model object (held weakly) and the sample's signature (input names, shapes, dtypes),
and is served only while the model's fingerprint is unchanged: every parameter and buffer (identity, storage,
in-place version counter, shape, dtype, requires_grad), every submodule (name, identity, class, an instance-level
``forward``, the functions of its class and bases, so a method patched on the class or its code replaced counts)
and the plain settings of each submodule (numbers, strings, flags such as dropout ``p``). Training
steps, ``load_state_dict``, replacing a layer, freezing, or patching ``forward`` all change it, so a changed
model is exported again, never served stale.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..graph import Graph

_SCALARS = (bool, int, float, str, type(None))
_LOCK = threading.Lock()
_ENTRIES: weakref.WeakKeyDictionary[Any, tuple[tuple, tuple, Graph]] = weakref.WeakKeyDictionary()


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple:
    """(position or keyword, shape, dtype) of every sample input."""
    items = [(i, tuple(a.shape), str(a.dtype)) for i, a in enumerate(args)]
    items += [(k, tuple(v.shape), str(v.dtype)) for k, v in sorted(kwargs.items())]
    return tuple(items)


def fingerprint(model: Any) -> tuple:
    """Everything of ``model`` an export depends on, cheaply comparable (no tensor data is read)."""
    tensors = [
        (name, id(t), t.data_ptr(), t._version, tuple(t.shape), str(t.dtype), bool(t.requires_grad))
        for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    ]
    modules, classes = [], {}
    for name, module in model.named_modules(remove_duplicate=False):
        settings = tuple(sorted((k, v) for k, v in vars(module).items() if isinstance(v, _SCALARS) and k != "training"))
        forward = vars(module).get("forward")
        if type(module) not in classes:
            classes[type(module)] = _methods(type(module))
        modules.append((name, id(module), type(module), id(forward) if forward is not None else None, settings))
    return tuple(tensors), tuple(modules), tuple(classes.items())


def _methods(cls: type) -> tuple:
    """The functions of ``cls`` and its bases below ``nn.Module`` (a method patched on the class changes it)."""
    found = []
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn.modules") and base.__name__ == "Module":
            break
        found.extend((base.__qualname__, key, id(value), id(getattr(value, "__code__", None)))
                     for key, value in vars(base).items() if callable(value))
    return tuple(found)


def lookup(model: Any, key: tuple) -> Graph | None:
    """The cached export of ``model`` for ``key`` if the model is unchanged since, else None."""
    with _LOCK:
        entry = _ENTRIES.get(model)
    if entry is None or entry[0] != key or entry[1] != fingerprint(model):
        return None
    return entry[2]


def store(model: Any, key: tuple, state: tuple, graph: Graph) -> None:
    """Remember ``graph`` as the export of ``model``, whose fingerprint is ``state`` once the export restored it."""
    with _LOCK:
        _ENTRIES[model] = (key, state, graph)
