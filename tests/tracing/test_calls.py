"""How a traced call ends: any BaseException, keyword arguments, an unrelated exception being handled."""

from __future__ import annotations

import pytest
import torch
from opentelemetry import trace
from torch import nn

import yolospan
from yolospan import attributes as A


class Interrupted(nn.Module):
    """A layer that raises what Ctrl-C raises, once."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = True

    def forward(self, x):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return x


def model_with(layer: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 1), layer, nn.ReLU())


def test_keyboard_interrupt_ends_the_spans_as_error_restores_context_and_passes_through(spans):
    model = model_with(Interrupted())
    x = torch.zeros(1, 3, 4, 4)
    handle = yolospan.instrument(model, layers=True)
    with pytest.raises(KeyboardInterrupt):
        model(x)
    assert trace.get_current_span() is trace.INVALID_SPAN  # the dead forward is not current
    forward = spans.one("forward")
    assert forward.status == "ERROR"
    assert forward.events[0]["attributes"]["exception.type"] == "KeyboardInterrupt"
    layers = {s.name: s for s in spans if s.name != "forward"}
    assert layers["Interrupted"].status == "ERROR"
    assert layers["Conv2d"].status != "ERROR"
    assert "ReLU" not in layers  # never ran
    model(x)  # later forwards are roots again, with their own layers
    second = spans.find("forward")[1]
    assert second.parent is None and second.status != "ERROR"
    handle.remove()
    assert all("_compiled_call_impl" not in m.__dict__ and not m._forward_hooks for m in model.modules())
    spans.clear()
    model(x)
    assert list(spans) == []


def test_a_counting_forward_interrupted_leaves_no_counter_and_caches_nothing(spans):
    model = model_with(Interrupted())
    x = torch.zeros(1, 3, 4, 4)
    with yolospan.instrument(model, layers=True):
        with pytest.raises(KeyboardInterrupt):
            model(x)  # the first forward of this shape counts FLOPs
        assert not any(m._forward_hooks for m in model.modules())
        model(x)
    second = spans.find("forward")[1]
    assert second.attributes[A.FLOPS_METHOD] == "thop"  # counted now, not a cached partial count
    assert second.attributes[A.FLOPS] == 2 * 3 * 4 * 16


class Records(nn.Module):
    """Returns None, as a module that only records or writes in place does."""

    def forward(self, x):
        self.seen = x.shape


def test_a_module_called_while_an_exception_is_handled_is_not_marked_error(spans):
    model = nn.Sequential(nn.Identity(), Records())
    with yolospan.instrument(model, layers=True):
        try:
            raise ValueError("unrelated")
        except ValueError:
            model(torch.zeros(1, 3, 4, 4))
    assert len(spans) == 3
    assert [s.name for s in spans if s.status == "ERROR"] == []
    assert all(s.events == [] for s in spans)


def test_keyword_calls_record_their_inputs_and_count_flops(spans):
    conv = nn.Conv2d(3, 4, 1)
    with yolospan.instrument(conv):
        conv(input=torch.zeros(1, 3, 4, 4))
        conv(input=torch.zeros(1, 3, 8, 8))
    first, second = spans.find("forward")
    assert first.attributes[A.INPUT_COUNT] == 1
    assert first.attributes[A.INPUT_SHAPE] == [1, 3, 4, 4]
    assert first.attributes[A.FLOPS] == 2 * 3 * 4 * 16
    assert second.attributes[A.INPUT_SHAPE] == [1, 3, 8, 8]
    assert second.attributes[A.FLOPS] == 2 * 3 * 4 * 64


def test_keyword_calls_of_a_layer_are_counted_in_the_forward(spans):
    class Keywords(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.conv(input=x)

    model = Keywords()
    with yolospan.instrument(model, layers=True):
        model(torch.zeros(1, 3, 4, 4))
    forward = spans.one("forward")
    conv = spans.one("Conv2d")
    assert conv.attributes[A.INPUT_SHAPE] == [1, 3, 4, 4]
    assert conv.attributes[A.FLOPS] == forward.attributes[A.FLOPS] == 2 * 3 * 4 * 16


@pytest.mark.parametrize("inner_first", [True, False], ids=["inner-removed-first", "outer-removed-first"])
def test_a_layer_instrumented_on_its_own_too_is_traced_by_both_and_removed_in_any_order(spans, inner_first):
    model = model_with(nn.Identity())
    x = torch.zeros(1, 3, 4, 4)
    outer = yolospan.instrument(model, layers=True)
    inner = yolospan.instrument(model[0])  # takes the slot; the outer one runs inside it
    model(x)
    assert sorted(s.name for s in spans) == ["Conv2d", "Identity", "ReLU", "forward", "forward"]
    (first, left), remaining = (
        ((inner, outer), ["Conv2d", "Identity", "ReLU", "forward"])
        if inner_first
        else ((outer, inner), ["forward"])
    )
    first.remove()
    spans.clear()
    model(x)
    assert sorted(s.name for s in spans) == remaining
    left.remove()
    assert all("_compiled_call_impl" not in m.__dict__ for m in model.modules())
    spans.clear()
    model(x)
    assert list(spans) == []
