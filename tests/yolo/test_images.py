from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from yolospan.yolo import default_image, load_image, prepare_image
from yolospan.yolo.images import letterbox


def test_the_default_picture_has_upstreams_bus_geometry_and_is_deterministic():
    first, second = default_image(), default_image()
    assert (first.height, first.width, first.mode) == (1080, 810, "RGB")
    digest = [hashlib.sha256(im.tobytes()).hexdigest() for im in (first, second)]
    assert digest[0] == digest[1]
    assert len(np.unique(np.asarray(first).reshape(-1, 3), axis=0)) > 50  # a picture, not a blank


def test_the_default_picture_becomes_a_640x480_input():
    prepared = prepare_image(None)
    assert tuple(prepared.tensor.shape) == (1, 3, 640, 480)
    assert (prepared.original_shape, prepared.pad) == ((1080, 810), (0.0, 0.0))
    assert prepared.tensor.dtype == torch.float32
    assert float(prepared.tensor.min()) >= 0.0 and float(prepared.tensor.max()) <= 1.0


def test_an_odd_size_is_rounded_up_to_the_stride_and_padded_grey():
    pixels = np.full((333, 500, 3), 255, np.uint8)
    prepared = prepare_image(pixels)
    # long side 500 -> 640 (gain 1.28); short side int(333 * 1.28) = 426 -> 448; 22 rows of padding
    assert tuple(prepared.tensor.shape) == (1, 3, 448, 640)
    assert prepared.gain == pytest.approx(1.28)
    assert prepared.pad == (0.0, 11.0)  # 448 - round(333 * 1.28) = 22 rows, 11 above and 11 below
    column = prepared.tensor[0, 0, :, 320]
    assert float(column[0]) == pytest.approx(114 / 255) and float(column[-1]) == pytest.approx(114 / 255)
    assert float(column[224]) == pytest.approx(1.0)


def test_letterbox_resizes_bilinearly_without_antialiasing():
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:, 2:] = 200
    out, gain, pad = letterbox(pixels, (2, 2))
    assert (gain, pad) == (0.5, (0.0, 0.0))
    assert out[:, :, 0].tolist() == [[0, 200], [0, 200]]  # half-pixel centres sample inside each half


@pytest.mark.parametrize(
    ("array", "shape"),
    [
        (np.zeros((20, 30), np.uint8), (20, 30, 3)),  # grayscale
        (np.zeros((20, 30, 1), np.uint8), (20, 30, 3)),
        (np.zeros((20, 30, 4), np.uint8), (20, 30, 3)),  # RGBA: alpha dropped
        (np.zeros((3, 20, 30), np.uint8), (20, 30, 3)),  # CHW
    ],
    ids=["hw", "hw1", "rgba", "chw"],
)
def test_numpy_layouts_become_hwc_rgb(array, shape):
    assert load_image(array).pixels.shape == shape


def test_channels_are_kept_in_order_and_alpha_is_dropped():
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 10, 255
    assert load_image(rgba).pixels[0, 0].tolist() == [10, 0, 0]
    chw = np.zeros((3, 6, 8), np.uint8)
    chw[2] = 7
    assert load_image(chw).pixels[0, 0].tolist() == [0, 0, 7]


def test_pil_images_of_any_mode_become_rgb():
    for mode in ("L", "RGBA", "P", "I;16"):
        assert load_image(Image.new(mode, (5, 4))).pixels.shape == (4, 5, 3)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (0, 128, 0)).save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.pixels.shape == (40, 20, 3)
    assert loaded.name == str(path)


def test_a_file_image_is_read_as_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (30, 10), 77).save(path)
    assert load_image(path).pixels[0, 0].tolist() == [77, 77, 77]
