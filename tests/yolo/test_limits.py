"""Config limits: checked on the numbers, then by a build and forward on the meta device."""

from __future__ import annotations

from typing import Any

import pytest

from yolospan.yolo import build_model, create_model, load_spec
from yolospan.yolo.dry_run import check_model
from yolospan.yolo.errors import ConfigError
from yolospan.yolo.limits import MAX_ACTIVATION, MAX_NC


def tiny(**changes: Any) -> dict[str, Any]:
    rows = [[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [64, 3, 2]], [-1, 1, "C3", [64]],
            [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [256, 3, 2]]]  # fmt: skip
    config: dict[str, Any] = {
        "nc": 2,
        "depth_multiple": 0.33,
        "width_multiple": 0.25,
        "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119]],
        "backbone": rows,
        "head": [[[3, 4], 1, "Detect", ["nc", "anchors"]]],
    }
    for key, value in changes.items():
        if key.startswith("row"):
            rows[int(key[3:])] = value
        else:
            config[key] = value
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nc": MAX_NC + 1}, r"<dict>: nc 10001 is above the limit of 10000 classes"),
        ({"width_multiple": 1e300}, r"width_multiple 1e\+300 is above the limit of 16"),
        ({"depth_multiple": 16, "row2": [-1, 5, "C3", [64]]}, r"row 2 \(layer 2\): C3 repeated 80 times"),
        ({"depth_multiple": 1e6}, r"depth_multiple 1e\+06 is above the limit of 16"),
        (
            {"row1": [-1, 1, "Conv", [10**20, 3, 2]]},
            r"row 1 \(layer 1\): Conv out_ch 1\d+ gives more than 16384",
        ),
        (
            {"row1": [-1, 1, "Conv", [64, 999, 2]]},
            r"row 1 \(layer 1\): Conv kernel 999 is outside the limits 1..31",
        ),
        ({"row1": [-1, 1, "Conv", [64, 3, 1000]]}, r"Conv stride 1000 is outside the limits 1..32"),
        ({"row1": [-1, 1, "nn.Upsample", [None, 1e-4, "nearest"]]}, r"scale_factor 0.0001 is outside"),
        ({"anchors": 1_000_000}, r"1000000 anchors per level is above the limit of 64"),
    ],
)
def test_numbers_beyond_the_limits_are_refused_with_the_row(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(tiny(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"row1": [-1, 1, "Conv", [64, 3, 2, None, 7]]},
            r"row 1 \(layer 1\): Conv cannot be built: .*groups",
        ),
        ({"row2": [[-1, 0], 1, "Concat", [1]]}, r"row 2 \(layer 2\): Concat cannot run at 256x256: Sizes"),
        (
            {"row2": [[-1, 1], 1, "Concat", [7]]},
            r"row 2 \(layer 2\): Concat cannot run at 256x256: Dimension",
        ),
        (
            {"row1": [-1, 1, "Conv", [64, 3, 32]], "row3": [-1, 1, "Conv", [128, 31, 2, 0]]},
            r"row 3 \(layer 3\): Conv cannot run at 256x256: .*Kernel size can't be greater",
        ),
    ],
)
def test_rows_that_cannot_be_built_or_run_are_named(changes: dict[str, Any], message: str) -> None:
    spec = load_spec(tiny(**changes))  # the numbers are fine
    with pytest.raises(ConfigError, match=message):
        check_model(spec)
    with pytest.raises(ConfigError, match=message):
        build_model(tiny(**changes))  # before any span or real allocation


def test_parameters_maps_and_flops_are_bounded() -> None:
    with pytest.raises(ConfigError, match=r"would have \d+ parameters \(limit 200000000\)"):
        check_model(load_spec(tiny(width_multiple=16, row4=[-1, 1, "Conv", [1024, 3, 2]])))
    with pytest.raises(
        ConfigError, match=rf"makes a map of \d+ elements at 8192x8192 \(limit {MAX_ACTIVATION}\)"
    ):
        check_model(load_spec("yolov5s"), (8192,))
    with pytest.raises(ConfigError, match=r"needs more than 2000 GFLOPs"):
        check_model(load_spec("yolov5x"), (2560,))


def test_the_shipped_models_are_well_within_the_limits() -> None:
    estimate = check_model(load_spec("yolov5x"), (1280,))
    assert estimate.params == 86_749_405
    assert 800 < estimate.gflops < 900  # upstream reports 820 GFLOPs at 1280 (205 at 640)


def test_create_model_checks_at_the_image_size_it_is_given() -> None:
    with pytest.raises(ConfigError, match="at 8192x8192"):
        create_model("yolov5s", imgsz=8192)
