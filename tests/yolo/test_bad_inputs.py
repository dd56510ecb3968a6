"""The corpus of bad configs, overrides, arguments and images, each with the exact message a user sees.

Every message is one line that names the file (or the argument), the row where there is one, and
the problem. Configs are inline YAML written to a temporary file.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from yolo_tiny import TINY_YAML

import yolospan
from yolospan.errors import UserError
from yolospan.yolo import ConfigError, ImageError, amp_check, load_image
from yolospan.yolo.create import resolve_device

KNOWN = [
    "C3",
    "Concat",
    "Conv",
    "Detect",
    "SPPF",
    "Segment",
    "nn.Upsample",
    "Bottleneck",
    "C3Ghost",
    "C3TR",
    "DWConv",
    "GhostBottleneck",
    "GhostConv",
    "SPP",
    "nn.MaxPool2d",
    "nn.ZeroPad2d",
]
KNOWN_TEXT = ", ".join(sorted(KNOWN))
KEYS = "nc, depth_multiple, width_multiple, anchors, backbone, head"
SYMBOLS = "nc, anchors, 'nearest', None"


def tiny(old: str, new: str) -> str:
    assert old in TINY_YAML, old
    return TINY_YAML.replace(old, new, 1)


# (id, config text, expected message with <file> for the config's path)
CONFIGS = [
    ("empty", "", "<file>: the config is empty"),
    ("only-comments", "# nothing here\n", "<file>: the config is empty"),
    (
        "not-yaml",
        "nc: [1, 2\n",
        "<file>: not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, column 1)",
    ),
    (
        "tab-indent",
        "nc: 1\n\tdepth_multiple: 1\n",
        "<file>: not valid YAML: found character '\\t' that cannot start any token (line 2, column 1)",
    ),
    ("list", "- 1\n- 2\n", f"<file>: a model config must be a YAML mapping with keys {KEYS}, got a list"),
    ("scalar", "yolov5s\n", f"<file>: a model config must be a YAML mapping with keys {KEYS}, got a string"),
    ("missing-head", TINY_YAML.split("head:")[0], "<file>: missing key head"),
    (
        "missing-two",
        tiny("nc: 2\n", "").replace("anchors:\n  - [10,13, 16,30]\n  - [30,61, 62,45]\n", ""),
        "<file>: missing keys nc, anchors",
    ),
    (
        "unknown-key",
        tiny("nc: 2\n", "nc: 2\nclasses: 2\n"),
        f"<file>: unknown key 'classes' (allowed: {KEYS}, ch, inplace, activation)",
    ),
    (
        "activation-unknown",
        tiny("nc: 2\n", "nc: 2\nactivation: nn.Softmax(1)\n"),
        "<file>: activation: 'nn.Softmax(1)' is not a known activation (known: nn.SiLU, nn.ReLU, "
        "nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Hardswish, nn.Mish, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Identity)",
    ),
    (
        "activation-code",
        tiny("nc: 2\n", "nc: 2\nactivation: nn.LeakyReLU(__import__('os').getpid())\n"),
        "<file>: activation: argument negative_slope must be a number, got \"__import__('os').getpid()\" "
        "in \"nn.LeakyReLU(__import__('os').getpid())\"",
    ),
    (
        "activation-extra-argument",
        tiny("nc: 2\n", "nc: 2\nactivation: nn.SiLU(0.1)\n"),
        "<file>: activation: argument inplace must be True or False, got '0.1' in 'nn.SiLU(0.1)'",
    ),
    (
        "activation-unknown-keyword",
        tiny("nc: 2\n", "nc: 2\nactivation: nn.LeakyReLU(slope=0.2)\n"),
        "<file>: activation: nn.LeakyReLU has no argument 'slope' (it takes negative_slope, inplace)",
    ),
    (
        "activation-not-text",
        tiny("nc: 2\n", "nc: 2\nactivation: 3\n"),
        "<file>: activation must be an activation such as nn.LeakyReLU(0.1), got 3",
    ),
    ("nc-zero", tiny("nc: 2", "nc: 0"), "<file>: nc must be an integer >= 1, got 0"),
    ("nc-text", tiny("nc: 2", "nc: eighty"), "<file>: nc must be an integer >= 1, got 'eighty'"),
    ("nc-bool", tiny("nc: 2", "nc: true"), "<file>: nc must be an integer >= 1, got True"),
    ("ch-zero", tiny("nc: 2", "nc: 2\nch: 0"), "<file>: ch must be an integer >= 1, got 0"),
    (
        "depth-negative",
        tiny("depth_multiple: 1.0", "depth_multiple: -1"),
        "<file>: depth_multiple must be a number > 0, got -1",
    ),
    (
        "width-nan",
        tiny("width_multiple: 1.0", "width_multiple: .nan"),
        "<file>: width_multiple must be a number > 0, got nan",
    ),
    (
        "inplace-text",
        tiny("nc: 2", "nc: 2\ninplace: yes please"),
        "<file>: inplace must be true or false, got 'yes please'",
    ),
    (
        "anchors-odd",
        tiny("[30,61, 62,45]", "[30,61, 62]"),
        "<file>: anchors: level 1 has 3 numbers; w,h pairs need an even count",
    ),
    (
        "anchors-word",
        tiny("anchors:\n  - [10,13, 16,30]\n  - [30,61, 62,45]", "anchors: big"),
        "<file>: anchors must be a list of levels of w,h pairs or an anchor count, got 'big'",
    ),
    (
        "anchors-negative",
        tiny("[10,13, 16,30]", "[10,-13, 16,30]"),
        "<file>: anchors: level 0 must hold numbers > 0, got [10, -13, 16, 30]",
    ),
    (
        "anchors-ragged",
        tiny("[30,61, 62,45]", "[30,61]"),
        "<file>: anchors: level 1 has 1 anchors but level 0 has 2; every level needs the same count",
    ),
    (
        "anchors-flat",
        tiny("anchors:\n  - [10,13, 16,30]\n  - [30,61, 62,45]", "anchors: [10, 13]"),
        "<file>: anchors: level 0 must be a list of w,h numbers, got 10",
    ),
    (
        "anchor-levels-vs-head",
        tiny("  - [30,61, 62,45]\n", "  - [30,61, 62,45]\n  - [90,61, 62,45]\n"),
        "<file>: head row 3 (layer 8): Detect reads 2 layers but its anchors have 3 levels",
    ),
    (
        "backbone-empty",
        tiny("backbone:\n", "backbone: []\nunused:\n").split("unused:")[0]
        + "head:"
        + TINY_YAML.split("head:")[1],
        "<file>: backbone must be a non-empty list of [from, number, module, args] rows",
    ),
    (
        "row-short",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, C3]"),
        "<file>: backbone row 2 (layer 2): a row must be [from, number, module, args], got [-1, 1, 'C3']",
    ),
    (
        "unknown-module",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, C4, [16]]"),
        f"<file>: backbone row 2 (layer 2): unknown module 'C4' (known: {KNOWN_TEXT})",
    ),
    (
        "module-number",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, 42, [16]]"),
        "<file>: backbone row 2 (layer 2): module must be a name such as Conv, got 42",
    ),
    (
        "from-ahead",
        tiny("[[-1, 2], 1, Concat, [1]]", "[[-1, 7], 1, Concat, [1]]"),
        "<file>: head row 1 (layer 6): from index 7 is out of range (this row can read layers 0..5, -1..-6)",
    ),
    (
        "from-before-input",
        tiny("[[-1, 1, Conv, [8, 3, 2]]", "[[-2, 1, Conv, [8, 3, 2]]"),
        "<file>: backbone row 0 (layer 0): from index -2 is out of range (this row can read the input (-1))",
    ),
    (
        "from-list-for-conv",
        tiny("[-1, 1, Conv, [16, 3, 2]]", "[[-1, 0], 1, Conv, [16, 3, 2]]"),
        "<file>: backbone row 1 (layer 1): Conv reads one layer: from must be an integer, got [-1, 0]",
    ),
    (
        "from-int-for-concat",
        tiny("[[-1, 2], 1, Concat, [1]]", "[-1, 1, Concat, [1]]"),
        "<file>: head row 1 (layer 6): Concat reads several layers: from must be a list, got -1",
    ),
    (
        "from-text",
        tiny("[-1, 1, C3, [16]]", "[prev, 1, C3, [16]]"),
        "<file>: backbone row 2 (layer 2): from must be an integer or a list of integers, got 'prev'",
    ),
    (
        "from-empty-list",
        tiny("[[-1, 2], 1, Concat, [1]]", "[[], 1, Concat, [1]]"),
        "<file>: head row 1 (layer 6): from must not be an empty list",
    ),
    (
        "number-zero",
        tiny("[-1, 1, C3, [16]]", "[-1, 0, C3, [16]]"),
        "<file>: backbone row 2 (layer 2): number must be an integer >= 1, got 0",
    ),
    (
        "head-repeated",
        tiny("[[7, 4], 1, Detect", "[[7, 4], 2, Detect"),
        "<file>: head row 3 (layer 8): Detect cannot be repeated (number must be 1, got 2)",
    ),
    (
        "too-many-args",
        tiny("[32, 5]", "[32, 5, 7]"),
        "<file>: backbone row 4 (layer 4): SPPF takes 1 to 2 arguments [out_ch, kernel], got 3",
    ),
    (
        "too-few-args",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, C3, []]"),
        "<file>: backbone row 2 (layer 2): C3 takes 1 to 4 arguments "
        "[out_ch, shortcut, groups, expansion], got 0",
    ),
    (
        "unknown-symbol",
        tiny("[8, 3, 2]", "[8, big, 2]"),
        f"<file>: backbone row 0 (layer 0): argument 1 'big' is not a known symbol ({SYMBOLS})",
    ),
    (
        "float-kernel",
        tiny("[8, 3, 2]", "[8, 3.5, 2]"),
        "<file>: backbone row 0 (layer 0): argument 1 (kernel) of Conv must be an integer >= 1, got 3.5",
    ),
    (
        "shortcut-number",
        tiny("[16, False]", "[16, 0]"),
        "<file>: head row 2 (layer 7): argument 1 (shortcut) of C3 must be true or false, got 0",
    ),
    (
        "bilinear",
        tiny("'nearest'", "'bilinear'"),
        f"<file>: head row 0 (layer 5): argument 2 'bilinear' is not a known symbol ({SYMBOLS})",
    ),
    (
        "no-scale",
        tiny("[None, 2, 'nearest']", "[None, None, 'nearest']"),
        "<file>: head row 0 (layer 5): nn.Upsample needs a size or a scale_factor",
    ),
    (
        "args-mapping",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, C3, {out: 16}]"),
        "<file>: backbone row 2 (layer 2): args must be a list, got {'out': 16}",
    ),
    (
        "arg-mapping",
        tiny("[-1, 1, C3, [16]]", "[-1, 1, C3, [{out: 16}]]"),
        f"<file>: backbone row 2 (layer 2): argument 0 must be a number, a boolean, {SYMBOLS} "
        "or a list of numbers, got {'out': 16}",
    ),
    (
        "detect-nc-zero",
        tiny("Detect, [nc, anchors]", "Detect, [0, anchors]"),
        "<file>: head row 3 (layer 8): argument 0 (nc) of Detect must be an integer >= 1, got 0",
    ),
    (
        "no-head",
        tiny("   [[7, 4], 1, Detect, [nc, anchors]],  # 8\n", ""),
        "<file>: head row 2 (layer 7): the last row must be Detect or Segment, got C3",
    ),
    (
        "head-not-last",
        tiny(
            "   [[7, 4], 1, Detect, [nc, anchors]],  # 8\n",
            "   [[7, 4], 1, Detect, [nc, anchors]],  # 8\n   [-1, 1, Conv, [8]],\n",
        ),
        "<file>: head row 3 (layer 8): Detect must be the last row",
    ),
    (
        "repeat-changes-width",
        tiny("[-1, 1, Conv, [32, 3, 2]]", "[-1, 2, Conv, [32, 3, 2]]"),
        "<file>: backbone row 3 (layer 3): Conv repeated 2 times needs in_ch == out_ch, got 16 -> 32",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_bad_config(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        yolospan.build_model(path)
    assert str(caught.value) == expected.replace("<file>", str(path))


def test_a_config_that_tries_to_run_code_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    module = f"__import__('os').system('touch {marker}')"
    path = tmp_path / "evil.yaml"
    path.write_text(tiny("[-1, 1, C3, [16]]", f'[-1, 1, "{module}", [16]]'))
    with pytest.raises(ConfigError, match=r"unknown module \"__import__\('os'\)"):
        yolospan.build_model(path)
    path.write_text(tiny("[-1, 1, C3, [16]]", f'[-1, 1, C3, ["{module}"]]'))
    with pytest.raises(ConfigError, match="is not a known symbol"):
        yolospan.build_model(path)
    assert not marker.exists()


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_bytes(b"\x80\x81PK\x03\x04")
    with pytest.raises(ConfigError) as caught:
        yolospan.build_model(path)
    assert str(caught.value) == f"{path}: not a YAML config (the file is not UTF-8 text)"


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ("missing.yaml", "missing.yaml: config file not found"),
        ("configs/yolov5s", "configs/yolov5s: config file not found"),
        (
            "yolov9",
            "unknown model 'yolov9': use one of yolov3, yolov3-spp, yolov3-tiny, yolov5-bifpn, yolov5-fpn, "
            "yolov5-p2, yolov5-p34, yolov5-p6, yolov5-p7, yolov5-panet, yolov5l, yolov5l-seg, yolov5l6, "
            "yolov5m, yolov5m-seg, yolov5m6, yolov5n, yolov5n-seg, yolov5n6, yolov5s, yolov5s-LeakyReLU, "
            "yolov5s-ghost, yolov5s-seg, yolov5s-transformer, yolov5s6, yolov5x, yolov5x-seg, yolov5x6 "
            "or the path of a YAML config",
        ),
    ],
)
def test_bad_config_names(tmp_path, monkeypatch, cfg, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        yolospan.build_model(cfg)
    assert str(caught.value) == expected


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError) as caught:
        yolospan.build_model(tmp_path)
    assert str(caught.value) == f"{tmp_path}: not a file; give the path of a YAML model config"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"nc": 0}, "nc override must be an integer >= 1, got 0"),
        ({"nc": 2.5}, "nc override must be an integer >= 1, got 2.5"),
        ({"anchors": [[1, 2, 3]]}, "anchors override: level 0 has 3 numbers; w,h pairs need an even count"),
        ({"anchors": 0}, "anchors override must be an integer >= 1, got 0"),
        ({"ch": 0}, "ch must be an integer >= 1, got 0"),
    ],
)
def test_bad_overrides(tiny_yaml, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        yolospan.build_model(tiny_yaml, **overrides)
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"amp_check": "maybe"}, "invalid AMP check policy 'maybe': use auto, on or off"),
        ({"device": "tpu"}, "invalid device 'tpu': use cpu, cuda or cuda:N"),
        ({"device": "cuda:x"}, "invalid device 'cuda:x': use cpu, cuda or cuda:N"),
        ({"imgsz": 0}, "imgsz must be an integer >= 1, got 0"),
        ({"image": "missing.jpg"}, "image not found: missing.jpg"),
    ],
)
def test_bad_arguments_fail_before_anything_is_built(tiny_yaml, spans, arguments, expected):
    with pytest.raises(UserError) as caught:
        yolospan.create_model(tiny_yaml, **arguments)
    assert str(caught.value) == expected
    spans.assert_none()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(UserError) as caught:
        resolve_device("cuda:0")
    assert str(caught.value) == "device 'cuda:0' was asked for but CUDA is not available on this machine"


# --- images -------------------------------------------------------------------------------------


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()[:-40]


FILE_IMAGES = [
    ("text", b"hello, not an image\n", "<file>: cannot read the image: not a recognised image format"),
    ("empty", b"", "<file>: cannot read the image: not a recognised image format"),
    ("truncated", _truncated_png(), "<file>: cannot read the image: image file is truncated"),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in FILE_IMAGES], ids=[c[0] for c in FILE_IMAGES])
def test_unreadable_image_files(tmp_path, data, expected):
    path = tmp_path / "picture.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert str(caught.value).startswith(expected.replace("<file>", str(path)))


def test_missing_image_and_directory(tmp_path):
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path / "nope.png")
    assert str(caught.value) == f"image not found: {tmp_path / 'nope.png'}"
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path)
    assert str(caught.value) == f"{tmp_path}: not a file; give the path of an image"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "https://ultralytics.com/images/bus.jpg",
            "https://ultralytics.com/images/bus.jpg: yolospan never downloads; "
            "save the image and give its path",
        ),
        (np.zeros((8, 8, 3), np.float32), "a numpy image must be uint8 (0-255), got dtype float32"),
        (
            np.zeros((1, 8, 8, 3), np.uint8),
            "a numpy image must be HxW, HxWxC or CxHxW with 1, 3 or 4 channels, got shape (1, 8, 8, 3)",
        ),
        (
            np.zeros((8, 8, 2), np.uint8),
            "a numpy image must be HxW, HxWxC or CxHxW with 1, 3 or 4 channels, got shape (8, 8, 2)",
        ),
        (np.zeros((0, 8, 3), np.uint8), "the image is empty (shape (0, 8, 3))"),
        (Image.new("RGB", (0, 0)), "the image is empty (0x0 pixels)"),
        (42, "unsupported image of type int: give a file path, a PIL image or a numpy array"),
    ],
    ids=["url", "float", "4d", "two-channels", "no-pixels", "pil-empty", "int"],
)
def test_unusable_image_objects(image, expected):
    with pytest.raises(ImageError) as caught:
        load_image(image)
    assert str(caught.value) == expected


def test_amp_check_reports_a_bad_image_even_when_skipped(probed, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    with pytest.raises(ImageError, match=r"notes\.txt: cannot read the image"):
        amp_check(probed("yolov5n"), policy="off", image=path)
