"""FlopCounterMode's count beside thop's: same forward, per signature, never left running."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import _get_current_dispatch_mode

import yolospan
from yolospan import attributes as A
from yolospan.tracing import flop_methods
from yolospan.tracing._torch_flops import parse_methods


def small() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.SiLU(),
        nn.Sequential(nn.Conv2d(16, 8, 1), nn.Upsample(scale_factor=2, mode="nearest")),
        nn.Flatten(),
        nn.Linear(8 * 32 * 32, 10),
    ).eval()


def reference_count(model: nn.Module, x: torch.Tensor) -> int:
    with flop_counter.FlopCounterMode(display=False) as counter:
        copy.deepcopy(model)(x)
    return counter.get_total_flops()


@pytest.fixture
def entered(monkeypatch):
    """How many FlopCounterModes yolospan entered."""
    calls: list[int] = []

    class Counting(flop_counter.FlopCounterMode):
        def __enter__(self):
            calls.append(1)
            return super().__enter__()

    monkeypatch.setattr(flop_counter, "FlopCounterMode", Counting)
    return calls


def test_torch_count_is_flop_counter_modes_count_of_the_same_forward(spans):
    model, x = small(), torch.zeros(2, 3, 32, 32)
    expected = reference_count(model, x)
    with yolospan.instrument(model, layers=True, flops=("thop", "torch"), tracer_provider=spans.provider):
        model(x)
    forward = spans.one("forward")
    assert forward.attributes[A.FLOPS_TORCH] == expected
    layers = {s.attributes[A.LAYER_INDEX]: s.attributes for s in spans if s.name != "forward"}
    assert sum(attrs[A.FLOPS_TORCH] for attrs in layers.values()) == expected
    assert layers[0][A.FLOPS_TORCH] == 2 * (2 * 16 * 16 * 16) * (3 * 3 * 3)  # the conv: as thop
    assert layers[0][A.FLOPS_TORCH] == layers[0][A.FLOPS]
    # thop charges BatchNorm and nearest upsampling; FlopCounterMode has no formula for either.
    assert layers[1][A.FLOPS] > 0 and layers[1][A.FLOPS_TORCH] == 0
    assert layers[3][A.FLOPS] > layers[3][A.FLOPS_TORCH] > 0
    assert forward.attributes[A.FLOPS] > forward.attributes[A.FLOPS_TORCH]


def test_counted_once_per_signature_without_an_extra_forward(spans, entered):
    model = small()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    with yolospan.instrument(model, flops=("thop", "torch"), tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(1, 3, 32, 32))
    assert len(calls) == 2  # the count rides on the traced forward: nothing else runs the model
    assert len(entered) == 1  # the second forward reuses the first one's count
    first, cached = spans.find("forward")
    assert cached.attributes[A.FLOPS_METHOD] == "thop.cached"
    assert cached.attributes[A.FLOPS_TORCH] == first.attributes[A.FLOPS_TORCH] > 0
    assert _get_current_dispatch_mode() is None


def test_a_new_signature_is_counted_again(spans):
    model = small()
    with yolospan.instrument(model, flops="thop,torch", tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(3, 3, 32, 32))
    one, three = spans.find("forward")
    assert three.attributes[A.FLOPS_TORCH] == 3 * one.attributes[A.FLOPS_TORCH]


def test_off_by_default(spans, entered):
    model = small()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 32, 32))
    assert entered == []
    assert all(A.FLOPS_TORCH not in s.attributes for s in spans)


def test_flop_methods_block_applies_to_instrumentations_made_inside_it(spans):
    model = small()
    with flop_methods(("thop", "torch")):
        handle = yolospan.instrument(model, tracer_provider=spans.provider)
    with handle:
        model(torch.zeros(1, 3, 32, 32))
    assert spans.one("forward").attributes[A.FLOPS_TORCH] > 0


def test_a_forward_that_raises_leaves_no_counter_running(spans):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(5, 2))  # the Linear gets the wrong width
    with yolospan.instrument(model, layers=True, flops=("thop", "torch"), tracer_provider=spans.provider):
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, 8, 8))
        assert _get_current_dispatch_mode() is None
        model[1] = nn.Flatten()
        yolospan.tracing.invalidate_flops(model)
        model(torch.zeros(1, 3, 8, 8))
    assert spans.find("forward")[-1].attributes[A.FLOPS_TORCH] == 2 * 4 * 8 * 8 * 3
    assert _get_current_dispatch_mode() is None


@pytest.mark.parametrize("text", ["thop,bogus", "", "flops"])
def test_unknown_methods_are_refused(text):
    with pytest.raises(ValueError, match="choose from thop, torch"):
        parse_methods(text)
    with pytest.raises(ValueError):
        yolospan.instrument(small(), flops=text.split(",") if text else [])


def test_thop_always_comes_first():
    assert parse_methods("torch") == ("thop", "torch")
    assert parse_methods(["TORCH", "thop", "torch"]) == ("thop", "torch")
