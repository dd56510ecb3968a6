from __future__ import annotations

import pytest
import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import current_span_attributes, span_attributes


def test_every_span_started_inside_the_block_carries_the_attributes(spans):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    with span_attributes({"job.id": "j-1"}), yolospan.phase("p", module=model, layers=True):
        model(torch.zeros(1, 3, 4, 4))
    assert spans.names() == ["p", "forward", "Conv2d", "ReLU"]
    assert all(span.attributes["job.id"] == "j-1" for span in spans)


def test_spans_outside_the_block_do_not(spans):
    model = nn.Conv2d(3, 4, 1)
    with span_attributes({"job.id": "j-1"}):
        pass
    with yolospan.instrument(model):
        model(torch.zeros(1, 3, 2, 2))
    assert "job.id" not in spans.one("forward").attributes
    assert current_span_attributes() == {}


def test_nested_blocks_add_up_and_the_inner_value_wins(spans):
    with span_attributes({"a": 1, "b": 1}), span_attributes({"b": 2}):
        assert current_span_attributes() == {"a": 1, "b": 2}
        with yolospan.span("work"):
            pass
    assert spans.one("work").attributes == {"a": 1, "b": 2}


def test_a_span_own_attributes_and_its_phase_win(spans):
    model = nn.Conv2d(3, 4, 1)
    outer = {A.PHASE: "outer", "x": "context", A.INPUT_DTYPE: "bogus"}
    with span_attributes(outer), yolospan.phase("p", module=model, attributes={"x": "explicit"}):
        model(torch.zeros(1, 3, 2, 2))
    phase_span = spans.one("p")
    assert phase_span.attributes[A.PHASE] == "p"
    assert phase_span.attributes["x"] == "explicit"
    forward = spans.one("forward")
    assert forward.attributes[A.PHASE] == "p"
    assert forward.attributes[A.INPUT_DTYPE] == "float32"


def test_a_failing_forward_keeps_the_attributes(spans):
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("boom")

    model = Boom()
    with span_attributes({"job.id": "j-2"}), yolospan.instrument(model), pytest.raises(ValueError):
        model(torch.zeros(1))
    forward = spans.one("forward")
    assert forward.status == "ERROR"
    assert forward.attributes["job.id"] == "j-2"


def test_the_block_is_undone_when_it_raises():
    with pytest.raises(RuntimeError), span_attributes({"a": 1}):
        raise RuntimeError
    assert current_span_attributes() == {}
