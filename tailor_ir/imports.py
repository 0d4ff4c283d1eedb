"""The one place that imports deep-learning frameworks.

TensorFlow, Paddle and the CUDA build of torch (through triton) bundle C++ libraries (protobuf, LLVM) whose
symbols bind to each other and segfault when two of them share a process. Loading paddle, paddle2onnx and
triton with ``RTLD_DEEPBIND`` keeps each bound to its own copy (see ENVIRONMENT.md). Every framework import in
this project goes through these functions, lazily, only when a model of that framework is seen.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

FRAMEWORKS = ("torch", "keras", "paddle")


@contextlib.contextmanager
def _deepbind() -> Iterator[None]:
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
    try:
        yield
    finally:
        sys.setdlopenflags(flags)


def _import_deepbind(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    with _deepbind():
        return importlib.import_module(name)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def preload_isolated_libraries() -> None:
    """DEEPBIND-load triton (shipped by CUDA builds of torch) without importing torch itself.

    Call this before code that may ``import torch`` directly (test modules, user scripts) in a process that
    also loads TensorFlow or Paddle; a no-op when triton is absent or already loaded.
    """
    if "torch" not in sys.modules:
        with contextlib.suppress(ImportError):
            _import_deepbind("triton")


def import_torch() -> ModuleType:
    """Import torch, loading triton (CUDA builds) with DEEPBIND first so TensorFlow cannot break it."""
    preload_isolated_libraries()
    return importlib.import_module("torch")


def import_torchvision() -> ModuleType:
    import_torch()
    return importlib.import_module("torchvision")


def import_onnx2torch() -> ModuleType:
    import_torchvision()
    return importlib.import_module("onnx2torch")


def import_tensorflow() -> ModuleType:
    """Import TensorFlow quietly."""
    _quiet_tensorflow()
    return importlib.import_module("tensorflow")


def import_keras() -> ModuleType:
    import_tensorflow()
    return importlib.import_module("keras")


def import_tf2onnx() -> ModuleType:
    import_tensorflow()
    return importlib.import_module("tf2onnx")


def import_paddle() -> ModuleType:
    """Import paddle with DEEPBIND so it works beside TensorFlow in either order."""
    return _import_deepbind("paddle")


def import_paddle2onnx() -> ModuleType:
    import_paddle()
    return _import_deepbind("paddle2onnx")


def framework_of(model: object) -> str | None:
    """The framework a model object belongs to ('torch', 'keras', 'paddle'), without importing any framework.

    Looks at the modules of the object's class hierarchy, so subclasses of ``torch.nn.Module``,
    ``keras.Model`` or ``paddle.nn.Layer`` defined anywhere are recognised.
    """
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "torch" and cls.__name__ == "Module":
            return "torch"
        if root in ("keras", "tf_keras") or (root == "tensorflow" and "keras" in cls.__module__):
            if cls.__name__ in ("Layer", "Model", "Operation"):
                return "keras"
        if root == "paddle" and cls.__name__ == "Layer":
            return "paddle"
    return None
