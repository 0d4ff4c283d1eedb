"""Unlabelled pools from what users have: a folder of images, a text file, a CSV/TSV or JSON-lines column.

- a folder: every image in it and its subfolders (``IMAGE_EXTENSIONS``), one Document each with ``.uri`` the
  file's path and id its path relative to the folder; the pixels are read when the model needs them
  (:class:`ImagePreprocess` resizes them to the model's input size) and shown as thumbnails (:func:`thumbnail`);
- ``*.txt``: one Document per non-empty line (``.text``), id ``line-<n>`` (n: its line number, from 1);
- ``*.csv`` / ``*.tsv`` / ``*.jsonl``: the text of one column (``column``; optional when the table has one),
  id ``row-<n>``.

Everything is read as data (text, CSV, JSON); nothing in these files can run code.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.data.content import IMAGE_EXTENSIONS

__all__ = ["ImagePreprocess", "image_folder", "load_pool", "table_column", "text_lines", "thumbnail"]

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
THUMBNAIL_SIDE = 256


def load_pool(path: str | Path, column: str | None = None) -> Any:
    """The DocumentArray for a folder of images, a text file or a table column (see the module docstring)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return image_folder(path)
    if not path.is_file():
        raise ValueError(f"data {str(path)!r} does not exist: give a folder of images, a .txt, .csv, .tsv or .jsonl")
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return table_column(path, column)
    if column is not None:
        raise ValueError(f"--column applies to {', '.join(TABLE_SUFFIXES)} files, not to {path.name}")
    if suffix == ".txt":
        return text_lines(path)
    raise ValueError(f"{path.name}: unknown kind of data; give a folder of images, a .txt, .csv, .tsv or .jsonl")


def image_folder(folder: Path) -> Any:
    """One Document (``.uri`` = the file) per image under ``folder``, recursively, in path order."""
    from docarray import Document, DocumentArray

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder} or its subfolders")
    return DocumentArray(
        Document(id=p.relative_to(folder).as_posix(), uri=str(p.resolve())) for p in files
    )


def text_lines(path: Path) -> Any:
    """One text Document per non-empty line of a UTF-8 file."""
    from docarray import Document, DocumentArray

    docs = DocumentArray()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text:
                docs.append(Document(id=f"line-{number}", text=text))
    if not len(docs):
        raise ValueError(f"{path} has no non-empty line of text")
    return docs


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    """(column names, rows) of a CSV/TSV with a header line, or of a JSON-lines file of objects."""
    if path.suffix.lower() == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number} is not JSON: {exc.msg}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number} is not a JSON object")
                rows.append(row)
        names = list(dict.fromkeys(k for row in rows for k in row))
        return names, rows
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def table_column(path: Path, column: str | None = None) -> Any:
    """One text Document per row of ``column`` (rows where it is empty are skipped); ids ``row-<n>``."""
    from docarray import Document, DocumentArray

    names, rows = _rows(path)
    if column is None:
        if len(names) != 1:
            raise ValueError(f"{path.name} has columns {', '.join(names) or '(none)'}: choose one with --column")
        column = names[0]
    if column not in names:
        raise ValueError(f"{path.name} has no column {column!r}; its columns: {', '.join(names)}")
    docs = DocumentArray()
    for number, row in enumerate(rows, start=1):
        value = row.get(column)
        text = "" if value is None else str(value).strip()
        if text:
            docs.append(Document(id=f"row-{number}", text=text))
    if not len(docs):
        raise ValueError(f"column {column!r} of {path.name} has no text")
    return docs


def _open_image(path: str | Path) -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("reading images needs Pillow: pip install pillow") from exc
    image = Image.open(path)
    image.load()
    return image


@dataclass(frozen=True)
class ImagePreprocess:
    """``preprocess_fn`` for image Documents (``.uri``): RGB, resized to ``size`` (height, width), as float32
    (3, H, W) in [0, 1], then ``(x - mean) / std`` per channel when given (e.g. ImageNet's for a pretrained
    torchvision model)."""

    size: tuple[int, int]
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"image size must be (height, width) of positive ints, got {self.size}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"image {name} must have 3 values (R, G, B), got {list(value)}")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"image std must be positive, got {list(self.std)}")

    def __call__(self, doc: Any) -> np.ndarray:
        if not doc.uri:
            raise ValueError("it has no .uri to read an image from")
        from PIL import Image

        image = _open_image(doc.uri).convert("RGB").resize((self.size[1], self.size[0]), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        if self.mean is not None:
            array = array - np.asarray(self.mean, np.float32)[:, None, None]
        if self.std is not None:
            array = array / np.asarray(self.std, np.float32)[:, None, None]
        return np.ascontiguousarray(array, dtype=np.float32)


def thumbnail(path: str | Path, side: int = THUMBNAIL_SIDE) -> str:
    """A ``data:`` URI of the image at ``path`` shrunk to at most ``side`` pixels a side: PNG for lossless
    sources (PNG, GIF, BMP) and images with transparency, JPEG for the rest (photos)."""
    image = _open_image(path)
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    lossless = has_alpha or image.format in ("PNG", "GIF", "BMP")
    image.thumbnail((side, side))
    image = image.convert("RGBA" if has_alpha else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if lossless else "JPEG", quality=85)
    mime = "image/png" if lossless else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"
