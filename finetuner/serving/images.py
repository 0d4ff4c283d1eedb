"""Images as clients have them: encoded bytes or a ``uri`` in, the model's input tensor out.

:class:`ImagePreprocessing` is the preprocessing an exported image model records in its metadata
(``preprocess["image"]``): colour mode, resize (shorter side or exact size, PIL resampling), centre crop, scale,
offset, per-channel mean/std and layout. It is applied here with Pillow (decode, resize) and numpy (crop,
normalise), the way torchvision's ``Resize``/``CenterCrop``/``ToTensor``/``Normalize`` compute on a PIL image.

:class:`ImageSource` turns a Document's ``blob`` or ``uri`` into bytes under a policy: a ``data:`` URI always,
a local path only inside an allowed folder, ``http(s)`` only when network fetches are enabled. Every failure
raises :class:`ImageError`, whose message the caller prefixes with the Document's id.

Imports numpy only; Pillow is imported when an image is first decoded.
"""

from __future__ import annotations

import base64
import io
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("JPEG", "PNG", "WEBP")
MODES = ("RGB", "BGR", "L")
LAYOUTS = ("NCHW", "NHWC")
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
MAX_PIXELS = 40_000_000  # 40 megapixels decode to 120 MB of RGB; anything bigger is refused before decoding
MAX_BYTES = 32 * 2**20


class ImageError(ValueError):
    """One image cannot be loaded or preprocessed; the message says why (the caller names the Document)."""


def _pair(value: Any, what: str) -> tuple[int, int]:
    """``224`` or ``[224]`` -> (224, 224); ``[h, w]`` -> (h, w)."""
    items = [value] if isinstance(value, int | np.integer) else list(value)
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or any(int(v) <= 0 for v in items):
        raise ImageError(f"{what} must be a positive int or [height, width], got {value!r}.")
    return int(items[0]), int(items[1])


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a decoded image becomes one model input (one Document's tensor, without the batch axis).

    Steps, in order: convert to ``mode`` (``RGB``, ``BGR`` or ``L``); ``resize`` (an int: the shorter side
    becomes it, the longer is scaled and truncated, as torchvision's ``Resize(int)``; ``[h, w]``: exactly that
    size) with ``resample``; centre ``crop`` to ``[h, w]`` (zero-padded where the image is smaller, as
    torchvision's ``CenterCrop``); ``x * scale + offset``; ``(x - mean) / std`` per channel; ``layout``.
    """

    layout: str = "NCHW"
    mode: str = "RGB"
    resize: int | tuple[int, int] | None = None
    resample: str = "bilinear"
    crop: tuple[int, int] | None = None
    scale: float = 1 / 255
    offset: float = 0.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ImageError(f"image layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}.")
        if self.mode not in MODES:
            raise ImageError(f"image mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.resample not in RESAMPLING:
            raise ImageError(f"resample must be one of {', '.join(RESAMPLING)}, got {self.resample!r}.")
        if self.resize is not None and not isinstance(self.resize, int):
            object.__setattr__(self, "resize", _pair(self.resize, "resize"))
        elif isinstance(self.resize, int) and self.resize <= 0:
            raise ImageError(f"resize must be positive, got {self.resize}.")
        if self.crop is not None:
            object.__setattr__(self, "crop", _pair(self.crop, "crop"))
        channels = self.channels
        for name in ("mean", "std"):
            values = tuple(float(v) for v in np.atleast_1d(getattr(self, name)))
            if len(values) not in (1, channels):
                raise ImageError(f"{name} has {len(values)} values; mode {self.mode} has {channels} channel(s).")
            object.__setattr__(self, name, values)
        if any(s == 0 for s in self.std):
            raise ImageError("std must not contain 0.")
        if np.dtype(self.dtype).kind != "f":
            raise ImageError(f"image models take float inputs here, not {self.dtype}.")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def output_shape(self) -> tuple[int, int, int] | None:
        """The (C, H, W) or (H, W, C) this produces when it fixes the size (a crop or an exact resize)."""
        size = self.crop or (self.resize if isinstance(self.resize, tuple) else None)
        if size is None:
            return None
        return (self.channels, *size) if self.layout == "NCHW" else (*size, self.channels)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "resample": self.resample, "crop": list(self.crop) if self.crop else None, "scale": self.scale,
            "offset": self.offset, "mean": list(self.mean), "std": list(self.std), "dtype": self.dtype,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any], layout: str = "NCHW") -> ImagePreprocessing:
        """Parse ``preprocess["image"]``; ``layout`` is the model's (``preprocess["layout"]``)."""
        known = {"mode", "resize", "resample", "crop", "scale", "offset", "mean", "std", "dtype"}
        unknown = sorted(set(item) - known)
        if unknown:
            raise ImageError(f"unknown image preprocessing keys {unknown}; known: {sorted(known)}.")
        try:
            values = {k: item[k] for k in known if k in item and item[k] is not None}
            for key in ("scale", "offset"):
                if key in values:
                    values[key] = float(values[key])
            return cls(layout=layout, **values)
        except (TypeError, ValueError) as exc:
            raise ImageError(f"malformed image preprocessing {dict(item)!r}: {exc}") from exc

    def apply(self, image: Any) -> np.ndarray:
        """A PIL image -> this model input (float, ``layout`` without the batch axis)."""
        from PIL import Image

        image = image.convert("RGB" if self.mode == "BGR" else self.mode)
        if self.resize is not None:
            height, width = self._resized_size(image.height, image.width)
            if (height, width) != (image.height, image.width):
                image = image.resize((width, height), getattr(Image.Resampling, self.resample.upper()))
        array = np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        if self.mode == "BGR":
            array = array[:, :, ::-1]
        if self.crop is not None:
            array = _center_crop(array, self.crop)
        out = array.astype(np.float32)
        if self.scale == 1 / 255:
            out /= np.float32(255)  # what torchvision's ToTensor computes (division, not a product)
        elif self.scale != 1:
            out *= np.float32(self.scale)
        if self.offset:
            out += np.float32(self.offset)
        if any(self.mean):
            out -= np.asarray(self.mean, np.float32)
        if any(s != 1 for s in self.std):
            out /= np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out, dtype=self.dtype)

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        """torchvision's ``Resize`` arithmetic: an int resizes the shorter side, the longer side truncates."""
        if isinstance(self.resize, tuple):
            return self.resize
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if height <= width else (new_long, self.resize)


def _center_crop(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torchvision's ``center_crop`` on an (H, W, C) array: zero-pad where smaller, then take the centre."""
    crop_h, crop_w = size
    height, width = array.shape[:2]
    if crop_h > height or crop_w > width:
        pad_top, pad_left = max(crop_h - height, 0) // 2, max(crop_w - width, 0) // 2
        pads = ((pad_top, max(crop_h - height, 0) - pad_top), (pad_left, max(crop_w - width, 0) - pad_left), (0, 0))
        array = np.pad(array, pads)
        height, width = array.shape[:2]
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return array[top : top + crop_h, left : left + crop_w]


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Any:
    """Encoded JPEG/PNG/WebP bytes -> a fully loaded PIL image; refuse other formats and oversized images."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        head = data[:12]
        raise ImageError(
            f"the bytes are not a {'/'.join(FORMATS)} image (they start with {head!r}); send an encoded image"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image has more pixels than the limit of {max_pixels:,} ({exc})") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"the image cannot be read ({exc})") from None
    if image.width * image.height > max_pixels:
        raise ImageError(
            f"the image has more pixels than the limit of {max_pixels:,} ({image.width}x{image.height}): "
            "downscale it before sending (or start the server with a higher max_pixels)"
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"the {image.format} image is broken or truncated ({exc})") from None
    return image


def decode_data_uri(uri: str) -> bytes:
    """The payload of a ``data:[<media type>][;base64],<data>`` URI."""
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageError("the data URI has no ',' between its header and its data")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError as exc:
            raise ImageError(f"the data URI's base64 payload is malformed ({exc})") from None
    return urllib.parse.unquote_to_bytes(payload)


@dataclass(frozen=True)
class ImageSource:
    """Where a Document's image may come from.

    ``folder``: local paths (plain or ``file://``) are read only when they resolve, symbolic links followed,
    inside it (None: no local files). ``network``: fetch ``http(s)`` URIs (off by default: a server that fetches
    what clients name can be turned against its own network). ``max_bytes`` / ``max_pixels`` bound each image.
    """

    folder: Path | None = None
    network: bool = False
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    timeout_s: float = 10.0

    def read_uri(self, uri: str) -> bytes:
        """The bytes a ``uri`` names, under this policy."""
        if uri.startswith("data:"):
            data = decode_data_uri(uri)
        else:
            scheme = urllib.parse.urlsplit(uri).scheme.lower()
            if scheme in ("http", "https"):
                data = self._fetch(uri)
            elif scheme in ("", "file"):
                data = self._read_local(urllib.parse.unquote(urllib.parse.urlsplit(uri).path) if scheme else uri)
            else:
                raise ImageError(f"uri scheme {scheme!r} is not served; send a blob, a data: URI or a local path")
        if len(data) > self.max_bytes:
            raise ImageError(f"the image is {len(data):,} bytes, over the limit of {self.max_bytes:,}")
        return data

    def _read_local(self, raw: str) -> bytes:
        if self.folder is None:
            raise ImageError(
                f"uri {raw!r} is a local path, and this server reads no local files: send the image as a blob or "
                "a data: URI, or start the server with an allowed folder (uri_folder=...)"
            )
        root = Path(self.folder).resolve()
        path = (root / raw).resolve()
        if not path.is_relative_to(root):
            raise ImageError(f"uri {raw!r} is outside the allowed folder {root}")
        if not path.is_file():
            raise ImageError(f"uri {raw!r} names no file inside {root}")
        if path.stat().st_size > self.max_bytes:
            raise ImageError(f"{path} is {path.stat().st_size:,} bytes, over the limit of {self.max_bytes:,}")
        return path.read_bytes()

    def _fetch(self, uri: str) -> bytes:
        if not self.network:
            raise ImageError(
                f"uri {uri!r} is a network address, and this server fetches nothing from the network: send the "
                "image as a blob or a data: URI (or start the server with network fetches enabled)"
            )
        import urllib.request

        try:
            with urllib.request.urlopen(uri, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                data = response.read(self.max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"fetching {uri!r} failed ({exc})") from None
        return data

    def image(self, blob: bytes | None, uri: str | None) -> Any:
        """The decoded image of a Document's ``blob`` (preferred) or ``uri``."""
        data = blob if blob else self.read_uri(str(uri))
        if len(data) > self.max_bytes:
            raise ImageError(f"the image is {len(data):,} bytes, over the limit of {self.max_bytes:,}")
        return decode_image(data, self.max_pixels)

