"""Data-only files for nested state (training checkpoints): one ``.npz`` that no loader can run code from.

A nested value of dicts (any scalar keys), lists, tuples, strings, numbers, booleans, None, numpy arrays and
torch tensors is split into a JSON tree and its arrays; both go into one ``.npz`` (the tree as UTF-8 bytes), read
back with ``np.load(allow_pickle=False)``. Object arrays are refused on write, so nothing that needs pickle is
ever written, and a file with pickled content is refused on read. Python's ``pickle`` never touches the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

__all__ = ["UnsafeFileError", "read_tree", "write_tree"]

TREE_KEY = "__finetuner_tree__"
FORMAT = "finetuner-data-only/1"


class UnsafeFileError(ValueError):
    """A file that is not in the data-only format (for instance a pickle) was refused."""


def write_tree(value: Any, path: str | os.PathLike) -> None:
    """Write ``value`` to ``path`` as a data-only ``.npz`` (see the module docstring for what it may hold)."""
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT, "value": _encode(value, arrays)}
    arrays[TREE_KEY] = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def read_tree(path: str | os.PathLike) -> Any:
    """Read what :func:`write_tree` wrote; raise :class:`UnsafeFileError` for anything else (pickles included)."""
    if not zipfile.is_zipfile(path):
        raise UnsafeFileError(
            f"{path} is not a data-only finetuner file (an .npz archive); it may be a pickle, which finetuner "
            "never loads because unpickling runs code: write it again with this version of finetuner"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            if TREE_KEY not in data.files:
                raise UnsafeFileError(f"{path} is an archive but not a finetuner data-only file (no {TREE_KEY})")
            tree = json.loads(data[TREE_KEY].tobytes().decode())
            if tree.get("format") != FORMAT:
                raise UnsafeFileError(f"{path} has format {tree.get('format')!r}, expected {FORMAT!r}")
            return _decode(tree["value"], data)
    except UnsafeFileError:
        raise
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        # np.load raises ValueError for pickled (object) arrays when allow_pickle=False
        raise UnsafeFileError(f"{path} is not a valid data-only finetuner file: {exc}") from exc


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return {"t": "float", "v": repr(value)} if isinstance(value, float) else value
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return {"t": "array", "k": _store(value, arrays)}
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        dtype = str(tensor.dtype)
        if dtype == "torch.bfloat16":
            tensor = tensor.float()
        return {"t": "torch", "k": _store(tensor.numpy(), arrays), "dtype": dtype}
    if isinstance(value, dict):
        return {"t": "dict", "items": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"t": "tuple", "items": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    raise TypeError(
        f"cannot store a {type(value).__name__} in a data-only file: convert it to numpy arrays, numbers, "
        "strings, lists or dicts first"
    )


def _store(array: np.ndarray, arrays: dict[str, np.ndarray]) -> str:
    if array.dtype.hasobject:
        raise TypeError("cannot store an object array in a data-only file (it would need pickle)")
    key = f"a{len(arrays)}"
    arrays[key] = np.require(array, requirements="C")  # keeps 0-d arrays 0-d (ascontiguousarray does not)
    return key


def _decode(node: Any, data: Any) -> Any:
    if isinstance(node, list):
        return [_decode(v, data) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node["t"]
    if kind == "float":
        return float(node["v"])
    if kind == "array":
        return np.array(data[node["k"]])
    if kind == "torch":
        import torch

        tensor = torch.from_numpy(np.array(data[node["k"]]))
        return tensor.to(getattr(torch, node["dtype"].removeprefix("torch.")))
    if kind == "tuple":
        return tuple(_decode(v, data) for v in node["items"])
    if kind == "dict":
        return {_decode(k, data): _decode(v, data) for k, v in node["items"]}
    raise UnsafeFileError(f"unknown node kind {kind!r} in a data-only file")
