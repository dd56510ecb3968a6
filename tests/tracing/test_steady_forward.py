"""A forward of a signature seen before: its span's attributes come from what the signature learned
(a late span), and what the current context gives is read again only when the context changed."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
import torch
from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from span_content import content
from yolospan import attributes as A
from yolospan.tracing import _steady, phase, span_attributes, use_tracer_provider


class Trimmed(nn.Module):
    """Returns its first ``keep`` rows (set from outside: an output whose size the data decides)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.SiLU()
        self.keep = 2
        self.fail = False

    def forward(self, x):
        if self.fail:
            raise ValueError("forward went wrong")
        y = self.act(self.conv(x))
        return y[: self.keep], [y.mean(), y]


def _recorder() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _plain(model: Trimmed) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _keep(n: int) -> Any:
    def step(model: Trimmed) -> contextlib.AbstractContextManager[Any]:
        model.keep = n
        return contextlib.nullcontext()

    return step


def _failing(model: Trimmed) -> contextlib.AbstractContextManager[Any]:
    model.fail = True
    return contextlib.nullcontext()


def _recovered(model: Trimmed) -> contextlib.AbstractContextManager[Any]:
    model.fail = False
    return contextlib.nullcontext()


STEPS: list[tuple[str, Any, bool]] = [  # (name, step, late: the forward span is a late span)
    ("first", _plain, False),
    ("second", _plain, True),
    ("third", _plain, True),
    ("span attributes", lambda model: span_attributes({"run": "r1"}), True),
    ("a phase", lambda model: phase("val"), True),
    ("an output of another size", _keep(3), False),
    ("back", _keep(2), True),
    ("raises", _failing, False),
    ("recovers", _recovered, True),
    ("an attribute set inside", lambda model: _setting_inside(), False),
]


@contextlib.contextmanager
def _setting_inside():
    """Sets an attribute on the current span from inside the next forward (a user's hook)."""
    original = Trimmed.forward

    def forward(self, x):
        trace.get_current_span().set_attribute("user.note", "inside")
        return original(self, x)

    Trimmed.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        Trimmed.forward = original  # type: ignore[method-assign]


def _run(*, late: bool, layers: bool, monkeypatch) -> list[Any]:
    torch.manual_seed(0)
    model = Trimmed().eval()
    provider, exporter = _recorder()
    out = []
    with monkeypatch.context() as patch:
        if not late:
            patch.setattr(_steady.SteadySpan, "source", lambda *args: None)
        with yolospan.instrument(model, layers=layers, tracer_provider=provider), torch.no_grad():
            for _name, step, _late in STEPS:
                exporter.clear()
                with step(model), contextlib.suppress(ValueError):
                    model(torch.ones(4, 3, 8, 8))
                out.append(exporter.get_finished_spans())
    return out


@pytest.mark.parametrize("layers", [False, True])
def test_a_late_forward_span_is_the_span_made_at_once(monkeypatch, layers):
    mine = _run(late=True, layers=layers, monkeypatch=monkeypatch)
    theirs = _run(late=False, layers=layers, monkeypatch=monkeypatch)
    for (name, _, late), spans, made in zip(STEPS, mine, theirs, strict=True):
        assert content(spans, by_start=True) == content(made, by_start=True), name
        (forward,) = [s for s in spans if s.name == "forward"]
        assert (type(forward) is not ReadableSpan) is late, name
        assert name == "raises" or forward.attributes[A.OUTPUT_COUNT] == 3
    assert [s.attributes.get("user.note") for s in mine[-1] if s.name == "forward"] == ["inside"]


def test_a_late_forward_span_copies_as_a_plain_span(monkeypatch):
    """(Neither pickles: the SDK's span attributes hold a lock.)"""
    spans = _run(late=True, layers=False, monkeypatch=monkeypatch)
    (late,) = spans[1]
    for copied in (copy.copy(late), copy.deepcopy(late)):
        assert type(copied) is ReadableSpan
        assert copied.to_json() == late.to_json()


def test_a_new_context_between_forwards_is_read_again():
    model = Trimmed().eval()
    first, first_spans = _recorder()
    second, second_spans = _recorder()
    x = torch.ones(2, 3, 8, 8)
    with yolospan.instrument(model), torch.no_grad(), use_tracer_provider(first):
        model(x)
        model(x)
        with use_tracer_provider(second), phase("val"):
            model(x)
        with span_attributes({"run": "r2"}):
            model(x)
        model(x)
    assert [s.attributes.get("run") for s in first_spans.get_finished_spans()] == [None, None, "r2", None]
    (in_second,) = [s for s in second_spans.get_finished_spans() if s.name == "forward"]
    assert in_second.attributes[A.PHASE] == "val"


def test_a_global_provider_set_between_forwards_is_used(monkeypatch):
    model = Trimmed().eval()
    first, first_spans = _recorder()
    second, second_spans = _recorder()
    x = torch.ones(2, 3, 8, 8)
    with yolospan.instrument(model), torch.no_grad():
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", first)
        model(x)
        model(x)
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", second)
        model(x)
    assert len(first_spans.get_finished_spans()) == 2
    assert len(second_spans.get_finished_spans()) == 1


def _config(*, enabled: bool) -> Any:
    return sdk_trace._TracerConfig(is_enabled=enabled)


def test_a_tracer_turned_off_between_forwards_makes_no_span():
    model = Trimmed().eval()
    provider, exporter = _recorder()
    x = torch.ones(2, 3, 8, 8)
    with yolospan.instrument(model, tracer_provider=provider), torch.no_grad():
        model(x)
        model(x)
        provider._set_tracer_configurator(tracer_configurator=lambda scope: _config(enabled=False))
        model(x)
        provider._set_tracer_configurator(tracer_configurator=lambda scope: _config(enabled=True))
        model(x)
    assert len(exporter.get_finished_spans()) == 3
