from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from yolospan.data import DatasetError, YoloDataset, read_label_file, synth_dataset


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    first = synth_dataset(tmp_path / "a", images=6, imgsz=48, nc=4, seed=7)
    synth_dataset(tmp_path / "b", images=6, imgsz=48, nc=4, seed=7)
    synth_dataset(tmp_path / "c", images=6, imgsz=48, nc=4, seed=8)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert (first.train_images, first.val_images, first.nc) == (6, 1, 4)
    assert len([name for name in a if name.endswith(".png")]) == 7
    assert first.boxes == sum(
        len(read_label_file(tmp_path / "a" / name)[0]) for name in a if name.endswith(".txt")
    )


def test_boxes_are_exactly_the_drawn_shapes(tmp_path):
    synth_dataset(tmp_path, images=4, imgsz=64, nc=1, seed=2)  # class 0 only: filled red rectangles
    for image_path in sorted((tmp_path / "images" / "train").glob("*.png")):
        pixels = np.asarray(Image.open(image_path)).astype(int)
        height, width = pixels.shape[:2]
        labels, problems = read_label_file(tmp_path / "labels" / "train" / f"{image_path.stem}.txt")
        assert problems == [] and len(labels)
        boxes = np.zeros((height, width), dtype=bool)
        for _, cx, cy, w, h in labels:
            left, top = round((cx - w / 2) * width), round((cy - h / 2) * height)
            right, bottom = round((cx + w / 2) * width), round((cy + h / 2) * height)
            boxes[top:bottom, left:right] = True
        red = (pixels[..., 0] == 220) & (pixels[..., 1] == 50) & (pixels[..., 2] == 47)
        np.testing.assert_array_equal(red, boxes)


def test_the_dataset_reads_back_without_problems(tmp_path):
    synth_dataset(tmp_path, images=5, val_images=2, imgsz=64, nc=3, seed=0)
    info = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert info["nc"] == 3 and info["names"] == ["rectangle", "ellipse", "triangle"]
    train = YoloDataset.from_root(tmp_path, "train", imgsz=64, nc=3)
    val = YoloDataset.from_root(tmp_path, "val", imgsz=64, nc=3)
    assert (len(train), len(val)) == (5, 2)
    assert train.problems == [] and val.problems == []


def test_an_existing_dataset_is_not_overwritten(tmp_path):
    synth_dataset(tmp_path, images=1, imgsz=32)
    with pytest.raises(DatasetError, match="already holds images/ or labels/"):
        synth_dataset(tmp_path, images=1, imgsz=32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": 0}, "--images must be at least 1"),
        ({"imgsz": 16}, "--imgsz must be at least 32 pixels"),
        ({"nc": 0}, "--nc must be at least 1"),
    ],
)
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        synth_dataset(tmp_path, **kwargs)
