"""A small synthetic YOLO dataset: drawn shapes and their boxes, so training runs offline.

Class ``c`` is drawn as one shape kind (rectangle, ellipse, triangle, cross, cycling) in one
colour of a fixed palette, so the classes are learnable. Everything follows from the seed: the
same arguments write byte-identical files. Images are PNG (lossless, so the boxes are exact) in
three aspect ratios, which exercises letterboxing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from yolospan.data.dataset import DATA_FILE, DatasetError
from yolospan.data.labels import format_label_line
from yolospan.yolo.limits import MAX_NC

__all__ = ["MAX_SEED", "MAX_SYNTH_IMAGES", "MAX_SYNTH_IMGSZ", "SHAPES", "SynthReport", "synth_dataset"]

MAX_SYNTH_IMAGES = 10_000
"""Images per split `synth_dataset` writes at most."""
MAX_SYNTH_IMGSZ = 4096
"""Longest image side `synth_dataset` draws."""
MAX_SEED = 2**63 - 1
"""Seeds are 0 to this (a non-negative 64-bit integer)."""

SHAPES = ("rectangle", "ellipse", "triangle", "cross")
"""Shape kinds in class order: class ``c`` is ``SHAPES[c % 4]``."""

_PALETTE = (
    (220, 50, 47),
    (38, 139, 210),
    (133, 153, 0),
    (211, 54, 130),
    (181, 137, 0),
    (42, 161, 152),
    (108, 113, 196),
    (203, 75, 22),
)
_MAX_OBJECTS = 4
_MIN_FRACTION = 0.15  # object side as a fraction of the image's short side
_MAX_FRACTION = 0.45


@dataclass(frozen=True)
class SynthReport:
    """What `synth_dataset` wrote."""

    root: Path
    train_images: int
    val_images: int
    boxes: int
    nc: int


def synth_dataset(
    root: str | os.PathLike[str],
    *,
    images: int = 32,
    val_images: int | None = None,
    imgsz: int = 128,
    nc: int = 3,
    seed: int = 0,
) -> SynthReport:
    """Write ``images/{train,val}``, ``labels/{train,val}`` and ``data.yaml`` under ``root``.

    ``val_images`` defaults to a quarter of ``images`` (at least one; 0 writes no ``val`` split).
    ``imgsz`` is the long side of each image. An existing dataset at ``root`` is an error rather
    than something to merge into.
    """
    _within("--images", images, 1, MAX_SYNTH_IMAGES)
    _within("--imgsz", imgsz, 32, MAX_SYNTH_IMGSZ, " pixels")
    _within("--nc", nc, 1, MAX_NC)
    _within("--seed", seed, 0, MAX_SEED)
    val_count = max(1, images // 4) if val_images is None else val_images
    _within("--val-images", val_count, 0, MAX_SYNTH_IMAGES)
    base = Path(root)
    if (base / "images").exists() or (base / "labels").exists():
        raise DatasetError(f"{base}: already holds images/ or labels/; choose an empty folder")
    rng = np.random.default_rng(seed)
    boxes = 0
    try:
        for split, count in (("train", images), ("val", val_count)):
            if count == 0:
                continue
            image_dir, label_dir = base / "images" / split, base / "labels" / split
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                picture, lines = _draw(rng, imgsz, nc)
                stem = f"{split}_{index:05d}"
                picture.save(image_dir / f"{stem}.png", optimize=False)
                (label_dir / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), "utf-8")
                boxes += len(lines)
        names = [f"{SHAPES[c % len(SHAPES)]}{c // len(SHAPES) or ''}" for c in range(nc)]
        info: dict[str, object] = {"path": ".", "train": "images/train"}
        if val_count:
            info["val"] = "images/val"
        info.update(nc=nc, names=names)
        (base / DATA_FILE).write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"{base}: cannot write the dataset ({error.strerror or error})") from None
    return SynthReport(base, images, val_count, boxes, nc)


def _within(option: str, value: int, low: int, high: int, unit: str = "") -> None:
    if value < low:
        raise DatasetError(f"{option} must be at least {low}{unit}, got {value}")
    if value > high:
        raise DatasetError(f"{option} must be at most {high}{unit}, got {value}")


def _draw(rng: np.random.Generator, imgsz: int, nc: int) -> tuple[Image.Image, list[str]]:
    width, height = [(imgsz, imgsz), (imgsz, imgsz * 3 // 4), (imgsz * 3 // 4, imgsz)][rng.integers(3)]
    top = rng.integers(40, 120, size=3)
    bottom = rng.integers(40, 120, size=3)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    background = top * (1 - rows) + bottom * rows + rng.normal(0, 6, size=(height, width, 3))
    picture = Image.fromarray(
        np.clip(np.broadcast_to(background, (height, width, 3)), 0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(picture)
    lines = []
    short = min(width, height)
    for _ in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
        cls = int(rng.integers(nc))
        w = int(rng.uniform(_MIN_FRACTION, _MAX_FRACTION) * short)
        h = int(rng.uniform(_MIN_FRACTION, _MAX_FRACTION) * short)
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(0, height - h))
        _shape(draw, cls, (x0, y0, x0 + w - 1, y0 + h - 1))
        lines.append(
            format_label_line(cls, (x0 + w / 2) / width, (y0 + h / 2) / height, w / width, h / height)
        )
    return picture, lines


def _shape(draw: ImageDraw.ImageDraw, cls: int, box: tuple[int, int, int, int]) -> None:
    """Fill exactly the pixels of ``box`` (inclusive corners) at its extremes with class ``cls``'s shape."""
    colour = _PALETTE[cls % len(_PALETTE)]
    x0, y0, x1, y1 = box
    kind = SHAPES[cls % len(SHAPES)]
    if kind == "rectangle":
        draw.rectangle(box, fill=colour)
    elif kind == "ellipse":
        draw.ellipse(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)
    else:
        third_w, third_h = (x1 - x0) // 3, (y1 - y0) // 3
        draw.rectangle((x0 + third_w, y0, x1 - third_w, y1), fill=colour)
        draw.rectangle((x0, y0 + third_h, x1, y1 - third_h), fill=colour)
