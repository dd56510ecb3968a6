"""The activation grammar, and a config's activation reaching its own model only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolospan.yolo import build_model
from yolospan.yolo.activation import Activation, parse_activation
from yolospan.yolo.blocks import Conv
from yolospan.yolo.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nn.LeakyReLU(0.1)", Activation("LeakyReLU", (("negative_slope", 0.1),))),
        (
            "LeakyReLU(negative_slope=2e-1, inplace=True)",
            Activation("LeakyReLU", (("negative_slope", 0.2), ("inplace", True))),
        ),
        ("nn.SiLU()", Activation("SiLU", ())),
        ("nn.Hardswish", Activation("Hardswish", ())),
        (" nn.ELU( 1.5 , ) ", Activation("ELU", (("alpha", 1.5),))),
    ],
)
def test_known_activations_parse(text, expected):
    assert parse_activation("a", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "nn.LeakyReLU(0.1) or exit()",
        "nn.LeakyReLU(float('nan'))",
        "nn.LeakyReLU(inf)",
        "nn.LeakyReLU(0.1, True, 3)",
        "nn.LeakyReLU(inplace=True, 0.1)",
        "nn.LeakyReLU(0.1, negative_slope=0.2)",
        "torch.nn.LeakyReLU(0.1)",
        "nn.Sequential()",
        "",
    ],
)
def test_anything_else_is_a_config_error(text):
    with pytest.raises(ConfigError) as caught:
        parse_activation("cfg.yaml: activation", text)
    assert str(caught.value).startswith("cfg.yaml: activation")
    assert "\n" not in str(caught.value)


def _acts(model: nn.Module) -> set[type]:
    return {type(m.act) for m in model.modules() if isinstance(m, Conv)} - {nn.Identity}


def test_the_leakyrelu_config_changes_only_its_own_model():
    torch.manual_seed(0)
    before = build_model("yolov5n").eval()
    leaky = build_model("yolov5s-LeakyReLU")
    torch.manual_seed(0)
    after = build_model("yolov5n").eval()
    assert _acts(leaky) == {nn.LeakyReLU}
    shared = {id(m.act) for m in leaky.modules() if isinstance(m, Conv) and isinstance(m.act, nn.LeakyReLU)}
    assert len(shared) == 1  # one instance per model, as upstream's class default counts once
    assert next(m.act for m in leaky.modules() if isinstance(m, Conv)).negative_slope == 0.1
    assert _acts(after) == {nn.SiLU}
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(before(image)[0], after(image)[0])
