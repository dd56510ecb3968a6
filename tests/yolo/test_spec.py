from __future__ import annotations

import dataclasses

import pytest
from upstream_table import load_table

from yolospan.yolo import load_spec, shipped_configs
from yolospan.yolo.configs import read_config

P3 = (10, 13, 16, 30, 33, 23)


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_validates(name):
    spec = load_spec(name)
    upstream = load_table()[name]
    assert spec.name == name
    assert len(spec.layers) == upstream["rows"]
    assert len(spec.head.sources) == len(upstream["strides"])  # one input per detection level
    assert spec.head.module == ("Segment" if name.endswith("-seg") else "Detect")


@pytest.mark.parametrize("name", [f"yolov5{size}{kind}" for size in "nsmlx" for kind in ("", "-seg")])
def test_the_p5_configs_share_one_layout(name):
    spec = load_spec(name)
    assert len(spec.layers) == 25
    assert [layer.section for layer in spec.layers].count("backbone") == 10
    assert spec.anchors[0] == P3


def test_symbols_resolve_to_values():
    spec = load_spec("yolov5s-seg")
    upsample = spec.layers[11]
    assert (upsample.module, upsample.args) == ("nn.Upsample", (None, 2, "nearest"))
    assert spec.head.args == (80, spec.anchors, 32, 256)
    assert spec.head.sources == (17, 20, 23) and spec.head.multi_source
    assert spec.layers[13].args == (512, False)


def test_nc_and_anchors_overrides_reach_the_head():
    spec = load_spec("yolov5s", nc=3, anchors=[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert spec.nc == 3
    assert spec.head.args == (3, ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)))
    assert spec.anchors_per_level == 2


def test_ch_comes_from_the_argument_then_the_config_then_three():
    data = dict(read_config("yolov5s").data)
    assert load_spec(data).ch == 3
    assert load_spec({**data, "ch": 1}).ch == 1
    assert load_spec({**data, "ch": 1}, ch=4).ch == 4


def test_specs_are_frozen():
    spec = load_spec("yolov5n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.nc = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.layers[0].module = "C3"  # type: ignore[misc]


def test_a_dict_config_is_accepted_and_copied():
    data = dict(read_config("yolov5n").data)
    spec = load_spec(data)
    assert (spec.name, spec.label) == ("model", "<dict>")
    data["nc"] = 1
    assert spec.nc == 80
