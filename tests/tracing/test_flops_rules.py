"""FLOPs per module type, pinned to hand-computed counts: the same under every thop release allowed.

.ci/run runs these (marker ``flops``) at the floors of .ci/floors.txt and at the newest
ultralytics-thop, so a release that changes a count fails here rather than changing yolospan's
figures. Counts are 2 x multiply-accumulates, the formula in each comment.
"""

from __future__ import annotations

import copy

import pytest
import torch
from thop import profile
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing._flops import rule_for, thop_custom_ops

pytestmark = pytest.mark.flops


class MyUpsample(nn.Upsample):
    """A user's subclass: the rule is found through the MRO, as thop finds its own."""


CASES = [
    # (module, input shape, FLOPs by hand)
    (nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 8, 8), 2 * (8 * 8 * 8) * 3 * 9),  # out x in x k²
    (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 8, 8), 2 * (8 * 8 * 8) * 3 * 9),  # the bias is free
    (nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False), (1, 4, 8, 8), 2 * (8 * 8 * 8) * 2 * 9),
    # transposed: input elements x output channels / groups x k²
    (nn.ConvTranspose2d(4, 2, 3, stride=2), (1, 4, 5, 5), 2 * (4 * 5 * 5) * 2 * 9),
    (nn.BatchNorm2d(4).eval(), (1, 4, 8, 8), 2 * 4 * (4 * 8 * 8)),  # affine: 4 per element
    (nn.BatchNorm2d(4, affine=False).eval(), (1, 4, 8, 8), 2 * 2 * (4 * 8 * 8)),
    (nn.GroupNorm(2, 4), (1, 4, 4, 4), 2 * 4 * (4 * 4 * 4)),  # counted like a BatchNorm since 2.1.2
    (nn.Linear(5, 3), (2, 4, 5), 2 * (2 * 4 * 3) * 5),  # out elements x in features
    # average pooling: one add per window element, one divide per output (2.1.3 on)
    (nn.AvgPool2d(2), (1, 2, 4, 4), 2 * (8 * 4 + 8)),
    (nn.AvgPool2d(3, 1, 1), (1, 2, 5, 5), 2 * (50 * 9 + 50)),  # padded cells counted
    (nn.AdaptiveAvgPool2d(2), (1, 2, 5, 5), 2 * (8 * 9 + 8)),  # 5 → 2: windows of 3x3 (2.1.2 on)
    (nn.Upsample(scale_factor=2, mode="nearest"), (1, 2, 4, 4), 2 * 1 * (2 * 8 * 8)),  # yolospan's rule
    (nn.UpsamplingNearest2d(scale_factor=2), (1, 2, 4, 4), 2 * 1 * (2 * 8 * 8)),
    (MyUpsample(scale_factor=2, mode="nearest"), (1, 2, 4, 4), 2 * 1 * (2 * 8 * 8)),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 4, 4), 2 * 11 * (2 * 8 * 8)),  # thop: 11 ops
    (nn.Upsample(scale_factor=2, mode="nearest-exact"), (1, 2, 4, 4), 0),  # thop: no cost for this mode
    (nn.MaxPool2d(2), (1, 2, 4, 4), 0),
    (nn.SiLU(), (1, 2, 4, 4), 0),
]


@pytest.mark.parametrize(("module", "shape", "flops"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_a_forward_counts_each_module_type_as_by_hand(module, shape, flops, spans):
    with yolospan.instrument(module, tracer_provider=spans.provider):
        module(torch.zeros(*shape))
    assert spans.one("forward").attributes[A.FLOPS] == flops


@pytest.mark.parametrize(("module", "shape", "flops"), [c for c in CASES if isinstance(c[0], nn.Upsample)])
def test_thop_profile_with_yolospans_custom_ops_agrees(module, shape, flops):
    model = nn.Sequential(nn.Identity(), module)
    macs, _ = profile(model, inputs=(torch.zeros(*shape),), custom_ops=thop_custom_ops(model), verbose=False)
    assert round(2 * macs) == flops


def test_custom_ops_name_only_the_types_yolospan_owns():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Upsample(scale_factor=2), MyUpsample(scale_factor=2))
    ops = thop_custom_ops(model)
    assert set(ops) == {nn.Upsample, MyUpsample}
    assert rule_for(nn.Conv2d) not in ops.values()


def test_a_model_with_upsampling_counts_the_same_in_the_forward_and_in_profile(spans):
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.Upsample(scale_factor=2)).eval()
    x = torch.zeros(1, 3, 4, 4)
    expected = 2 * (4 * 4 * 4) * 3 + 2 * (4 * 8 * 8)
    macs, _ = profile(copy.deepcopy(model), inputs=(x,), custom_ops=thop_custom_ops(model), verbose=False)
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(x)
    assert round(2 * macs) == spans.one("forward").attributes[A.FLOPS] == expected
    assert spans.one("Upsample").attributes[A.FLOPS] == 2 * (4 * 8 * 8)


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x)[0]


def test_multihead_attention_is_charged_nothing_as_upstreams_published_figures(spans):
    # yolov5s-transformer's 16.4 GFLOPs were counted by a thop with no attention rule; later
    # releases added one, which would make the figure depend on the installed thop.
    model = _SelfAttention().eval()
    x = torch.zeros(5, 1, 16)
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(x)
    assert spans.one("forward").attributes[A.FLOPS] == 0
    macs, _ = profile(copy.deepcopy(model), inputs=(x,), custom_ops=thop_custom_ops(model), verbose=False)
    assert macs == 0
