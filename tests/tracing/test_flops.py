from __future__ import annotations

import copy

import pytest
import torch
from thop import profile
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import invalidate_flops
from yolospan.tracing._flops import thop_custom_ops

pytestmark = pytest.mark.flops


def small() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.SiLU(),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(16, 8, 1), nn.Upsample(scale_factor=2, mode="nearest")),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 10),
    )


@pytest.mark.parametrize("training", [False, True])
def test_forward_flops_equal_thop_profile(spans, training):
    model = small().train(training)
    x = torch.zeros(2, 3, 32, 32)
    macs, _ = profile(copy.deepcopy(model), inputs=(x,), custom_ops=thop_custom_ops(model), verbose=False)
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(x)
    (forward,) = spans.find("forward")
    assert forward.attributes[A.FLOPS] == int(2 * macs)
    assert forward.attributes[A.FLOPS_METHOD] == "thop"
    layers = [s for s in list(spans) if s.name != "forward"]
    assert sum(s.attributes[A.FLOPS] for s in layers) == forward.attributes[A.FLOPS]
    conv = layers[0]
    assert conv.attributes[A.FLOPS] == 2 * (2 * 16 * 16 * 16) * (3 * 3 * 3)


def test_flops_are_cached_per_signature_and_recounted_for_new_shapes(spans):
    model = small().eval()
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(2, 3, 32, 32))
    first, cached, bigger = spans.find("forward")
    assert first.attributes[A.FLOPS_METHOD] == "thop"
    assert cached.attributes[A.FLOPS_METHOD] == "thop.cached"
    assert cached.attributes[A.FLOPS] == first.attributes[A.FLOPS]
    assert bigger.attributes[A.FLOPS_METHOD] == "thop"
    assert bigger.attributes[A.FLOPS] == 2 * first.attributes[A.FLOPS]


def test_counting_hooks_are_gone_after_the_counted_forward(spans):
    model = small()
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 32, 32))
        leaves = [m for m in model.modules() if m is not model]
        assert all(not m._forward_hooks for m in leaves)
        assert all("total_ops" not in vars(m) for m in model.modules())


def test_invalidate_flops_recounts_after_a_structural_change(spans):
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4)).eval()
    x = torch.zeros(1, 3, 8, 8)
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(x)
        model[1] = nn.Identity()  # what fusing a BatchNorm into its conv does to the graph
        invalidate_flops(model)
        model(x)
    before, after = spans.find("forward")
    assert after.attributes[A.FLOPS_METHOD] == "thop"
    assert after.attributes[A.FLOPS] == before.attributes[A.FLOPS] - 2 * (
        4 * 4 * 8 * 8
    )  # thop: 4 MACs per element of an affine BN


def test_a_layer_first_seen_inside_a_cached_forward_is_still_counted(spans):
    model = small().eval()
    x = torch.zeros(1, 3, 32, 32)
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(x)
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(x)
    layers = [s for s in list(spans) if s.name != "forward"]
    forward = spans.find("forward")[-1]
    assert sum(s.attributes[A.FLOPS] for s in layers) == forward.attributes[A.FLOPS]


def test_a_forward_inside_thop_profile_counts_and_leaves_thops_own_count_alone(spans):
    # Upstream's model summary runs thop.profile on a copy; yolospan traces that forward too.
    model = small().eval()
    x = torch.zeros(1, 3, 32, 32)
    untraced, _ = profile(copy.deepcopy(model), inputs=(x,), verbose=False)
    with yolospan.instrument(model, tracer_provider=spans.provider):
        traced, _ = profile(model, inputs=(x,), verbose=False)
    assert traced == untraced  # thop's own count is left alone
    # The span carries yolospan's count: thop's rules, with yolospan's own where they differ
    # between thop releases (nearest upsampling), as `thop_custom_ops` hands them to thop.
    ours, _ = profile(copy.deepcopy(model), inputs=(x,), custom_ops=thop_custom_ops(model), verbose=False)
    assert spans.one("forward").attributes[A.FLOPS] == round(2 * ours)
