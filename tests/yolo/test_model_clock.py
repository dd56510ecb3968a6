"""The YOLO model times its own layers (the native layer clock) and gives the hook path's spans."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import yolospan
from yolospan import attributes as A
from yolospan.tracing import _instrument

_MEASURED = {A.ACHIEVED_FLOPS_PER_S, A.PEAK_FLOPS_PER_S, A.PEAK_FRACTION, A.DEVICE_TIME_MS}


def _content(spans) -> list[tuple[Any, ...]]:
    names = {s.context.span_id: s.name for s in spans}
    return [
        (
            s.name,
            names.get(s.parent.span_id) if s.parent else None,
            {k: v for k, v in s.attributes.items() if k not in _MEASURED},  # rates: per call, hook path only
            s.status.status_code,
        )
        for s in spans
    ]


def _traced(model, inputs, monkeypatch, *, clocked: bool) -> tuple[list[Any], int]:
    """The spans of each forward, and how many calls went through yolospan's traced-call path."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runs = []
    run = _instrument.Instrumentation._run
    out = []
    with monkeypatch.context() as patch:
        patch.setattr(_instrument.Instrumentation, "_run", lambda *a: runs.append(1) or run(*a))
        if not clocked:
            patch.setattr(_instrument, "_times_its_layers", lambda module: False)
        with yolospan.instrument(model, layers=True, tracer_provider=provider), torch.no_grad():
            for mode, image, amp in inputs:
                model.train(mode == "train")
                exporter.clear()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    model(image)
                out.append(exporter.get_finished_spans())
    return out, len(runs)


def test_clocked_forwards_give_the_same_spans_as_the_hook_path(tiny_yaml, monkeypatch):
    model = yolospan.build_model(tiny_yaml)
    small, large = torch.rand(2, 3, 32, 32), torch.rand(1, 3, 64, 64)
    spans = len(model.model) + 1
    inputs = [
        ("eval", small, False),
        ("eval", small, False),  # learned: only the clock is read
        ("eval", large, False),  # a new shape is a new signature
        ("train", small, False),
        ("eval", small, True),  # autocast is part of the signature too
        ("eval", small, True),
        ("eval", small, False),
    ]
    clocked, clocked_runs = _traced(model, inputs, monkeypatch, clocked=True)
    hooked, hooked_runs = _traced(model, inputs, monkeypatch, clocked=False)
    for mine, theirs in zip(clocked, hooked, strict=True):
        assert len(mine) == spans
        assert _content(mine) == _content(theirs)
    assert [s.attributes[A.FLOPS_METHOD] for s in clocked[0][:2]] == ["thop", "thop"]
    assert {s.attributes[A.FLOPS_METHOD] for s in clocked[1]} == {"thop.cached"}
    assert clocked[4][0].attributes[A.AUTOCAST] == "bfloat16"
    assert clocked[3][0].attributes[A.TRAINING] is True
    # Four forwards described (one per signature) went through yolospan for each layer; the three
    # that were learned, only for the model.
    assert clocked_runs == 4 * spans + 3
    assert hooked_runs == 7 * spans


def test_a_clocked_models_layers_keep_their_call_slots_free(probed, spans):
    model = probed("yolov5n").eval()
    with yolospan.instrument(model, layers=True), torch.no_grad():
        assert [m for m in model.model if "_compiled_call_impl" in m.__dict__] == []
        model(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(1, 3, 32, 32))
    assert len(spans.find(A.SPAN_FORWARD)) == 2
    assert len(spans) == 2 * 26


@pytest.mark.parametrize("index", [0, 12])
def test_a_raising_layer_ends_the_clocked_forward_with_an_error(probed, spans, index, monkeypatch):
    model = probed("yolov5n").eval()
    layer = model.model[index]
    with yolospan.instrument(model, layers=True), torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
        spans.clear()
        monkeypatch.setattr(layer, "forward", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, 32, 32))
    forward = spans.one(A.SPAN_FORWARD)
    assert len(forward.children) == index + 1
    failed = forward.children.one(layer_index=index)
    assert failed.status == "ERROR" and failed.status_description == "RuntimeError: boom"
