from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from yolospan.data import DatasetError, YoloDataset, collate, read_dataset_info, split_dirs


def _image(path, width, height, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)


def _labels(path, *lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture
def root(tmp_path):
    _image(tmp_path / "images" / "a.png", 64, 32)
    _labels(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.5 0.5", "1 0.25 0.75 0.5 0.5")
    _image(tmp_path / "images" / "b.png", 32, 32)  # no label file: background only
    return tmp_path


def test_samples_are_letterboxed_with_boxes_moved_along(root):
    dataset = YoloDataset.from_root(root, imgsz=64)
    assert len(dataset) == 2
    sample = dataset[0]
    assert sample.image.shape == (3, 64, 64) and sample.image.dtype == torch.uint8
    # 64x32 → unchanged size, padded 16 px above and below: y and h shrink towards the middle.
    np.testing.assert_allclose(
        sample.labels.numpy(), [[0, 0.5, 0.5, 0.5, 0.25], [1, 0.25, 0.625, 0.5, 0.25]], atol=1e-6
    )
    assert sample.image[:, 0, 0].tolist() == [114, 114, 114]  # padding
    assert sample.image[:, 32, 32].tolist() == [200, 30, 30]
    assert dataset[1].labels.shape == (0, 5)
    assert dataset.classes_seen() == 2


def test_small_images_are_scaled_up_to_the_image_size(root):
    sample = YoloDataset.from_root(root, imgsz=64)[1]
    assert sample.image.shape == (3, 64, 64)
    assert sample.image[:, 0, 0].tolist() == [200, 30, 30]  # 32x32 filled the square: no padding


def test_collate_numbers_the_boxes_by_image(root):
    dataset = YoloDataset.from_root(root, imgsz=64)
    batch = collate([dataset[1], dataset[0]])
    assert batch.images.shape == (2, 3, 64, 64)
    assert batch.targets.shape == (2, 6)
    assert batch.targets[:, 0].tolist() == [1.0, 1.0]
    assert batch.paths[1].endswith("a.png")


def test_corrupt_images_are_skipped_with_a_warning_naming_the_file(root, caplog):
    (root / "images" / "garbage.jpg").write_bytes(b"not an image at all")
    good = root / "images" / "c.png"
    _image(good, 40, 40)
    truncated = root / "images" / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    _image(root / "images" / "tiny.png", 5, 5)
    with caplog.at_level(logging.WARNING, logger="yolospan.data.dataset"):
        dataset = YoloDataset.from_root(root, imgsz=64)
    assert [p.name for p in dataset.paths] == ["a.png", "b.png", "c.png"]
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith(f"{root / 'images' / 'garbage.jpg'}: skipped: not a recognised") for m in messages
    )
    assert any(m.startswith(f"{truncated}: skipped: corrupt image") for m in messages)
    assert (
        f"{root / 'images' / 'tiny.png'}: skipped: image is 5x5 pixels; at least 10 a side is needed"
        in messages
    )
    assert dataset.problems == messages


def test_bad_label_lines_are_skipped_with_file_and_line(root, caplog):
    _labels(root / "labels" / "a.txt", "0 0.5 0.5 0.5 0.5", "0 0.5 0.5", "7 0.5 0.5 0.1 0.1")
    with caplog.at_level(logging.WARNING, logger="yolospan.data.dataset"):
        dataset = YoloDataset.from_root(root, imgsz=64, nc=3)
    label_file = root / "labels" / "a.txt"
    assert dataset.problems == [
        f"{label_file}:2: skipped: expected 5 values (class cx cy w h), got 3",
        f"{label_file}:3: skipped: class 7 is outside the dataset's 3 classes (0-2)",
    ]
    assert [r.getMessage() for r in caplog.records] == dataset.problems
    assert len(dataset[0].labels) == 1


def test_splits_map_images_to_labels(tmp_path):
    _image(tmp_path / "images" / "train" / "sub" / "x.png", 20, 20)
    _labels(tmp_path / "labels" / "train" / "sub" / "x.txt", "0 0.5 0.5 0.5 0.5")
    images, labels = split_dirs(tmp_path, "train")
    dataset = YoloDataset(images)  # labels found next to images/ by upstream's rule
    assert dataset.labels_dir == labels
    assert len(dataset[0].labels) == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no such folder; a YOLO dataset has images/ and labels/ folders"),
        (lambda root: (root / "images").mkdir(), "no images found"),
        (
            lambda root: (
                (root / "images").mkdir(),
                (root / "images" / "x.png").write_bytes(b"junk"),
            ),
            "none of the 1 images can be read",
        ),
    ],
)
def test_unusable_datasets_are_user_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        YoloDataset.from_root(tmp_path)


def test_data_yaml_names_the_classes(tmp_path):
    assert read_dataset_info(tmp_path).nc is None
    (tmp_path / "data.yaml").write_text("names: [cat, dog]\n")
    info = read_dataset_info(tmp_path)
    assert info.nc == 2 and info.names == ("cat", "dog")
    (tmp_path / "data.yaml").write_text("nc: 3\nnames: {0: a, 1: b}\n")
    with pytest.raises(DatasetError, match="nc is 3 but 2 names are given"):
        read_dataset_info(tmp_path)
    (tmp_path / "data.yaml").write_text("nc: zero\n")
    with pytest.raises(DatasetError, match="nc must be a positive integer"):
        read_dataset_info(tmp_path)
