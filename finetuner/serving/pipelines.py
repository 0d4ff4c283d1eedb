"""Read the image preprocessing a user trained with into the :class:`ImagePreprocessing` an export records.

Accepted: an explicit ``ImagePreprocessing`` or dict of its fields; a torchvision transform or ``Compose`` of
``Grayscale``, ``Resize``, ``CenterCrop``, ``ToTensor`` (or ``PILToTensor``/``ToImage`` + a float
``ConvertImageDtype``/``ToDtype(scale=True)``) and ``Normalize`` (v1 and v2); ``paddle.vision.transforms``
``Compose`` of ``Resize``, ``CenterCrop``, ``ToTensor`` and ``Normalize`` (PIL backend); Keras ``Rescaling`` and
``Normalization`` layers (alone, in a list or in a ``Sequential``). Any other step is refused by name: serving
must compute what training computed, or say it cannot. Frameworks are never imported here; steps are read
from their attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from finetuner.serving.images import ImageError, ImagePreprocessing

# the order steps must come in (a Resize after a crop, or Normalize before the tensor, is not what we compute)
_TORCHVISION_RANK = {
    "Grayscale": 0, "Resize": 1, "CenterCrop": 2, "ToTensor": 3, "PILToTensor": 3, "ToImage": 3,
    "ConvertImageDtype": 4, "ToDtype": 4, "Normalize": 5,
}


def image_preprocessing(
    given: Any, layout: str, input_shape: tuple[int | str, ...] | None = None, dtype: str = "float32",
) -> ImagePreprocessing:
    """The preprocessing to record for an image model whose input has ``layout`` and ``input_shape``.

    ``given``: None (finetuner's default image loading: the decoded image scaled to [0, 1], no resize), an
    ``ImagePreprocessing``, a dict of its fields, or a known transform pipeline. The result is checked against
    the model's input: channels, and the height and width where both are fixed.
    """
    if isinstance(given, ImagePreprocessing):
        spec = ImagePreprocessing.from_json(given.to_json(), layout)
    elif isinstance(given, Mapping):
        spec = ImagePreprocessing.from_json({"dtype": dtype, **given}, layout)
    else:
        fields = _from_pipeline(given, layout) if given is not None else {}
        fields.setdefault("mode", _mode_of(input_shape, layout))
        spec = ImagePreprocessing.from_json({"dtype": dtype, **fields}, layout)
    _check_against_input(spec, input_shape)
    return spec


def _mode_of(input_shape: tuple[int | str, ...] | None, layout: str) -> str:
    channels = _dims(input_shape, layout)[0]
    return "L" if channels == 1 else "RGB"


def _dims(input_shape: tuple[int | str, ...] | None, layout: str) -> tuple[Any, Any, Any]:
    """(C, H, W) of a 4-d input shape (ints where fixed); Nones when the shape is unknown."""
    if not input_shape or len(input_shape) != 4:
        return (None, None, None)
    _, *rest = input_shape
    c, h, w = rest if layout == "NCHW" else (rest[2], rest[0], rest[1])
    return tuple(d if isinstance(d, int) else None for d in (c, h, w))  # type: ignore[return-value]


def _check_against_input(spec: ImagePreprocessing, input_shape: tuple[int | str, ...] | None) -> None:
    channels, height, width = _dims(input_shape, spec.layout)
    if channels is not None and channels != spec.channels:
        raise ImageError(
            f"the model takes {channels} channel(s) but the image preprocessing makes {spec.channels} "
            f"(mode {spec.mode}): pass mode='RGB' or 'L' to match"
        )
    shape = spec.output_shape()
    if shape is not None and height is not None and width is not None:
        size = shape[1:] if spec.layout == "NCHW" else shape[:2]
        if tuple(size) != (height, width):
            raise ImageError(
                f"the image preprocessing makes {size[0]}x{size[1]} images but the model takes {height}x{width}"
            )


def _from_pipeline(pipeline: Any, layout: str) -> dict[str, Any]:
    module = type(pipeline).__module__
    steps = _steps(pipeline)
    if module.startswith("torchvision.transforms"):
        return _from_torchvision(steps)
    if module.startswith("paddle.vision.transforms"):
        return _from_paddle(steps, layout)
    if module.startswith(("keras", "tf_keras", "tensorflow")) or (
        steps and type(steps[0]).__module__.startswith(("keras", "tf_keras"))
    ):
        return _from_keras(steps)
    raise ImageError(
        f"cannot read the image preprocessing of a {module}.{type(pipeline).__name__}: pass "
        "image_preprocessing={'resize': ..., 'crop': ..., 'mean': ..., 'std': ...} explicitly, or a torchvision "
        "Compose / Keras Rescaling and Normalization layers"
    )


def _steps(pipeline: Any) -> list[Any]:
    if isinstance(pipeline, list | tuple):
        return list(pipeline)
    if type(pipeline).__name__ == "Compose":
        return list(pipeline.transforms)
    if type(pipeline).__name__ == "Sequential" and hasattr(pipeline, "layers"):
        return [layer for layer in pipeline.layers if type(layer).__name__ != "InputLayer"]
    return [pipeline]


def _unknown_step(step: Any, known: Any) -> ImageError:
    return ImageError(
        f"the image preprocessing step {type(step).__name__} cannot be reproduced in serving (known: "
        f"{', '.join(known)}): pass image_preprocessing={{...}} with the equivalent fields, or move the step "
        "into the model"
    )


def _in_order(steps: list[Any], ranks: Mapping[str, int]) -> list[tuple[str, Any]]:
    """``(class name, step)`` pairs, once every step is known and in the order serving applies them."""
    named = [(type(step).__name__, step) for step in steps]
    for index, (name, step) in enumerate(named):
        if name not in ranks:
            raise _unknown_step(step, ranks)
        if index and ranks[name] < ranks[named[index - 1][0]]:
            raise ImageError(
                f"{name} comes after a later step; serving applies Resize, CenterCrop, ToTensor, Normalize in that order"
            )
    return named


def _from_torchvision(steps: list[Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"scale": 1.0}
    for name, step in _in_order(steps, _TORCHVISION_RANK):
        if name == "Grayscale":
            if step.num_output_channels != 1:
                raise ImageError("Grayscale(num_output_channels=3) is not reproduced: use mode='L' on a 1-channel model")
            fields["mode"] = "L"
        elif name == "Resize":
            if getattr(step, "max_size", None):
                raise ImageError("Resize(max_size=...) is not reproduced in serving: drop max_size")
            size = step.size
            fields["resize"] = int(size) if isinstance(size, int) else (
                int(size[0]) if len(size) == 1 else [int(size[0]), int(size[1])]
            )
            mode = getattr(step.interpolation, "value", step.interpolation)
            if not isinstance(mode, str) or mode == "nearest-exact":
                raise ImageError(f"Resize interpolation {step.interpolation} is not reproduced; use bilinear or bicubic")
            fields["resample"] = mode
        elif name == "CenterCrop":
            fields["crop"] = [int(v) for v in step.size]
        elif name == "ToTensor":
            fields["scale"] = 1 / 255
        elif name in ("ConvertImageDtype", "ToDtype"):
            dtype = step.dtype if name == "ConvertImageDtype" else _single_dtype(step.dtype)
            if not getattr(dtype, "is_floating_point", False):
                raise ImageError(f"{name} to {dtype} is not a float input; image models take floats")
            if name == "ConvertImageDtype" or getattr(step, "scale", False):
                fields["scale"] = 1 / 255
        elif name == "Normalize":
            fields["mean"] = [float(v) for v in step.mean]
            fields["std"] = [float(v) for v in step.std]
    return fields


_PADDLE_RANK = {"Resize": 1, "CenterCrop": 2, "ToTensor": 3, "Normalize": 4}


def _from_paddle(steps: list[Any], layout: str) -> dict[str, Any]:
    """paddle.vision.transforms on a PIL image: the same arithmetic as torchvision's, plus data formats."""
    fields: dict[str, Any] = {"scale": 1.0}
    for name, step in _in_order(steps, _PADDLE_RANK):
        if name in ("ToTensor", "Normalize") and step.data_format != layout[1:]:
            raise ImageError(f"{name}(data_format={step.data_format!r}) does not match the model's layout {layout}")
        if name == "Resize":
            if not isinstance(step.interpolation, str) or step.interpolation not in (
                "nearest", "bilinear", "bicubic", "box", "lanczos", "hamming"
            ):
                raise ImageError(f"Resize interpolation {step.interpolation!r} is not reproduced; use bilinear or bicubic")
            size = step.size
            fields["resize"] = int(size) if isinstance(size, int) else [int(size[0]), int(size[1])]
            fields["resample"] = step.interpolation
        elif name == "CenterCrop":
            fields["crop"] = [int(v) for v in step.size]
        elif name == "ToTensor":
            fields["scale"] = 1 / 255
        elif name == "Normalize":
            if step.to_rgb:
                raise ImageError("Normalize(to_rgb=True) is for OpenCV's BGR images; serving decodes RGB: drop it")
            fields["mean"] = [float(v) for v in np.atleast_1d(step.mean)]
            fields["std"] = [float(v) for v in np.atleast_1d(step.std)]
    return fields


def _single_dtype(dtype: Any) -> Any:
    if isinstance(dtype, dict):
        values = set(dtype.values())
        if len(values) != 1:
            raise ImageError(f"ToDtype with per-type dtypes {dtype} is not reproduced")
        return values.pop()
    return dtype


def _from_keras(steps: list[Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"scale": 1.0, "offset": 0.0}
    normalized = False
    for step in steps:
        name = type(step).__name__
        if name == "Rescaling" and not normalized:
            if np.asarray(step.scale).size != 1 or np.asarray(step.offset).size != 1:
                raise ImageError("Rescaling with per-channel scale or offset is not reproduced: use Normalization")
            fields["scale"] = float(np.asarray(step.scale).reshape(()))
            fields["offset"] = float(np.asarray(step.offset).reshape(()))
        elif name == "Normalization":
            if step.mean is None or getattr(step, "invert", False):
                raise ImageError("a Keras Normalization layer must be adapted (or given mean/variance) and not invert")
            axis = tuple(np.atleast_1d(step.axis))
            if axis not in ((-1,), (3,)):
                raise ImageError(f"Normalization over axis {step.axis} is not reproduced; use axis=-1 (channels)")
            mean = np.asarray(step.mean, np.float64).reshape(-1)
            std = np.maximum(np.sqrt(np.asarray(step.variance, np.float64).reshape(-1)), 1e-7)
            fields["mean"], fields["std"] = mean.tolist(), std.tolist()
            normalized = True
        else:
            raise _unknown_step(step, ("Rescaling", "Normalization"))
    return fields
