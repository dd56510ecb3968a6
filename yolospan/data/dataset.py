"""A YOLO-format dataset: ``images/`` and ``labels/`` folders, letterboxed samples for training.

The label of ``images/<rel>.png`` is ``labels/<rel>.txt`` (upstream's convention), so splits are
subfolders: ``images/train`` with ``labels/train``. The dataset is scanned once when it is
created: unreadable images and bad label lines are skipped then, each with a warning naming the
file (and line), and listed in `YoloDataset.problems`; what remains is guaranteed to be usable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from yolospan.data.labels import LabelProblem, read_label_file
from yolospan.errors import UserError
from yolospan.inputs import load_yaml, read_regular_file
from yolospan.yolo.errors import ImageError
from yolospan.yolo.images import letterbox, load_image
from yolospan.yolo.limits import MAX_NC

__all__ = [
    "DATA_FILE",
    "IMAGE_SUFFIXES",
    "DatasetError",
    "DatasetInfo",
    "Sample",
    "YoloDataset",
    "read_dataset_info",
    "split_dirs",
]

_log = logging.getLogger(__name__)

MAX_PROBLEMS_SHOWN = 5
"""Skipped images and label lines logged one by one per split; the rest are counted in one line."""

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""Files under ``images/`` read as images (case-insensitive)."""

DATA_FILE = "data.yaml"
"""Optional file at the dataset root naming the classes (``nc``, ``names``), as upstream's data YAMLs."""

_MIN_SIDE = 10  # upstream rejects images under 10 pixels a side


class DatasetError(UserError):
    """A dataset that cannot be used at all (no folder, no images, a bad data.yaml)."""


class Sample(NamedTuple):
    """One letterboxed image and its boxes, normalised to the letterboxed image."""

    image: torch.Tensor  # uint8 [3, imgsz, imgsz]
    labels: torch.Tensor  # float32 [n, 5]: class, cx, cy, w, h
    path: str


@dataclass(frozen=True)
class DatasetInfo:
    """What ``data.yaml`` says about the classes; both None when there is no such file."""

    nc: int | None
    names: tuple[str, ...] | None


@dataclass(frozen=True)
class _Item:
    path: Path
    labels: np.ndarray  # [n, 5] normalised to the original image


def read_dataset_info(root: str | os.PathLike[str]) -> DatasetInfo:
    """``nc`` and ``names`` from ``root/data.yaml`` (either may be given; names imply nc)."""
    path = Path(root) / DATA_FILE
    if not path.exists():
        return DatasetInfo(None, None)
    try:
        data = read_regular_file(path, "dataset file", max_bytes=_MAX_DATA_BYTES)
        content: Any = load_yaml(data.decode("utf-8"), str(path), error=DatasetError)
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a YAML file (not UTF-8 text)") from None
    except UserError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(content, dict):
        raise DatasetError(f"{path}: expected a mapping with nc and names")
    names = content.get("names")
    if isinstance(names, dict):  # upstream also accepts {0: person, 1: car}
        names = _names_by_index(path, names)
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise DatasetError(f"{path}: names must be a list of strings")
    nc = content.get("nc", len(names) if names is not None else None)
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
        raise DatasetError(f"{path}: nc must be a positive integer, got {_shown(nc)}")
    if nc is not None and nc > MAX_NC:
        raise DatasetError(f"{path}: nc {nc} is above the limit of {MAX_NC} classes")
    if names is not None and nc != len(names):
        raise DatasetError(f"{path}: nc is {nc} but {len(names)} names are given")
    return DatasetInfo(nc, tuple(names) if names is not None else None)


_MAX_DATA_BYTES = 1 << 20


def _names_by_index(path: Path, names: dict[Any, Any]) -> list[Any]:
    """``{0: person, 1: car}`` as a list; the keys must be exactly 0..n-1."""
    keys = list(names)
    if not all(isinstance(key, int) and not isinstance(key, bool) for key in keys) or sorted(keys) != list(
        range(len(keys))
    ):
        raise DatasetError(f"{path}: names given as a mapping must have the keys 0, 1, ... {len(keys) - 1}")
    return [names[key] for key in range(len(keys))]


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, (str, int, float)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def split_dirs(root: str | os.PathLike[str], split: str | None = None) -> tuple[Path, Path]:
    """``(images, labels)`` folders of ``root`` (or of its ``split`` subfolders)."""
    base = Path(root)
    images, labels = base / "images", base / "labels"
    if split is not None:
        images, labels = images / split, labels / split
    if not images.is_dir():
        raise DatasetError(f"{images}: no such folder; a YOLO dataset has images/ and labels/ folders")
    return images, labels


class YoloDataset(Dataset[Sample]):
    """Images under ``images_dir`` with their labels, letterboxed to ``imgsz`` x ``imgsz``.

    Images are scaled so the long side is ``imgsz`` and padded evenly with grey (114), as
    upstream's training loader does without augmentation. ``nc``, when given, rejects label
    lines with a class outside it.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike[str],
        labels_dir: str | os.PathLike[str] | None = None,
        *,
        imgsz: int = 640,
        nc: int | None = None,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.labels_dir = Path(labels_dir) if labels_dir is not None else _sibling_labels(self.images_dir)
        self.imgsz = imgsz
        self.nc = nc
        self.problems: list[str] = []
        self._items = self._scan()

    @classmethod
    def from_root(
        cls,
        root: str | os.PathLike[str],
        split: str | None = None,
        *,
        imgsz: int = 640,
        nc: int | None = None,
    ) -> YoloDataset:
        images, labels = split_dirs(root, split)
        return cls(images, labels, imgsz=imgsz, nc=nc)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Sample:
        item = self._items[index]
        try:
            pixels = load_image(item.path).pixels
        except ImageError as error:  # changed or truncated since the scan
            raise DatasetError(str(error)) from None
        height, width = pixels.shape[:2]
        boxed, gain, (pad_x, pad_y) = letterbox(pixels, (self.imgsz, self.imgsz))
        labels = item.labels.copy()
        if len(labels):
            labels[:, 1] = (labels[:, 1] * width * gain + pad_x) / self.imgsz
            labels[:, 2] = (labels[:, 2] * height * gain + pad_y) / self.imgsz
            labels[:, 3] *= width * gain / self.imgsz
            labels[:, 4] *= height * gain / self.imgsz
        image = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1)))
        return Sample(image, torch.from_numpy(labels), str(item.path))

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self._items]

    @property
    def labels(self) -> list[np.ndarray]:
        """Each image's boxes, normalised to the original image."""
        return [item.labels for item in self._items]

    def classes_seen(self) -> int:
        """1 + the largest class id in the labels (0 without labels)."""
        largest = max((int(item.labels[:, 0].max()) for item in self._items if len(item.labels)), default=-1)
        return largest + 1

    # --- scanning ---------------------------------------------------------------------------------

    def _scan(self) -> list[_Item]:
        if not self.images_dir.is_dir():
            raise DatasetError(f"{self.images_dir}: no such folder of images")
        paths = sorted(
            p for p in self.images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not paths:
            raise DatasetError(f"{self.images_dir}: no images found ({', '.join(IMAGE_SUFFIXES)})")
        items = []
        for path in paths:
            reason = _verify_image(path)
            if reason is not None:
                self._warn(LabelProblem(str(path), 0, f"skipped: {reason}"))
                continue
            label_path = self.labels_dir / path.relative_to(self.images_dir).with_suffix(".txt")
            labels, problems = read_label_file(label_path, nc=self.nc)
            for problem in problems:
                self._warn(LabelProblem(problem.path, problem.line, f"skipped: {problem.reason}"))
            items.append(_Item(path, labels))
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            _log.warning(
                "%d more problems in %s not shown (%d in all)",
                len(self.problems) - MAX_PROBLEMS_SHOWN,
                self.images_dir,
                len(self.problems),
            )
        if not items:
            raise DatasetError(f"{self.images_dir}: none of the {len(paths)} images can be read")
        return items

    def _warn(self, problem: LabelProblem) -> None:
        self.problems.append(str(problem))
        if len(self.problems) <= MAX_PROBLEMS_SHOWN:  # the first few; a count says how many more
            _log.warning("%s", problem)


def _sibling_labels(images_dir: Path) -> Path:
    """``.../images/train`` → ``.../labels/train``: the last ``images`` path part becomes ``labels``."""
    parts = list(images_dir.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            return Path(*parts)
    return images_dir.parent / "labels"


def _verify_image(path: Path) -> str | None:
    """Why the image cannot be used, or None; checks the file's structure without decoding it."""
    try:
        with Image.open(path) as image:
            image.verify()
            width, height = image.size
    except UnidentifiedImageError:
        return "not a recognised image format"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"corrupt image ({message})"
    if width < _MIN_SIDE or height < _MIN_SIDE:
        return f"image is {width}x{height} pixels; at least {_MIN_SIDE} a side is needed"
    return None
