"""The native layer clock: a model that runs its own layer loop is traced without touching its layers."""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode
from torch import nn

import yolospan
from span_content import content
from yolospan import attributes as A
from yolospan.tracing import Layer, _fast_spans, _instrument, layer_clock


class Counted(nn.Module):
    """Counts its forwards; raises while ``fail`` is set."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.fail = False

    def forward(self, x):
        self.calls += 1
        if self.fail:
            raise ValueError("layer went wrong")
        return self.inner(x)


class Looped(nn.Module):
    """A generic model that owns its layer loop and times it as `ClockedModule` describes."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [Counted(nn.Conv2d(3, 4, 3, padding=1)), Counted(nn.SiLU()), Counted(nn.Conv2d(4, 2, 1))]
        )
        self.clocks: list[Any] = []

    def forward(self, x):
        clock = layer_clock(self)
        self.clocks.append(clock)
        if clock is None:
            for layer in self.layers:
                x = layer(x)
            return x
        ticks = clock.ticks
        for i, layer in enumerate(self.layers):
            ticks[2 * i] = time.time_ns()
            x = clock.call(i, layer, x) if clock.describing else layer(x)
            ticks[2 * i + 1] = time.time_ns()
        return x

    def traced_layers(self):
        return [Layer(i, layer, f"L{i}", (i - 1,)) for i, layer in enumerate(self.layers)]

    def clocks_its_layers(self) -> bool:
        return True


def _recorder(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _forwards(model: nn.Module, xs: list[torch.Tensor], *, clocked: bool, monkeypatch, **kwargs):
    provider, exporter = _recorder(**kwargs)
    with monkeypatch.context() as patch:
        if not clocked:
            patch.setattr(_instrument, "_times_its_layers", lambda module: False)
        out = []
        with yolospan.instrument(model, layers=True, tracer_provider=provider):
            for x in xs:
                exporter.clear()
                with contextlib.suppress(ValueError):
                    model(x)
                out.append(exporter.get_finished_spans())
    return out


def test_clocked_layers_give_the_hook_paths_spans(monkeypatch):
    model = Looped().eval()
    xs = [torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 8, 8)]
    with yolospan.tracing.span_attributes({"run": "r1"}), yolospan.tracing.phase("val"):
        clocked = _forwards(model, xs, clocked=True, monkeypatch=monkeypatch)
        hooked = _forwards(model, xs, clocked=False, monkeypatch=monkeypatch)
    assert [c is not None and c.describing for c in model.clocks[:4]] == [True, False, True, False]
    for mine, theirs in zip(clocked, hooked, strict=True):
        assert [s.name for s in mine] == ["L0", "L1", "L2", "forward"]
        assert content(mine) == content(theirs)
    steady = clocked[1]
    assert steady[0].attributes[A.FLOPS_METHOD] == "thop.cached" and steady[0].attributes[A.FLOPS] > 0
    assert steady[0].attributes["run"] == "r1" and steady[0].attributes[A.PHASE] == "val"
    forward = steady[-1]
    for earlier, later in itertools.pairwise(steady[:3]):
        assert forward.start_time <= earlier.start_time <= earlier.end_time <= later.start_time
    assert steady[2].end_time <= forward.end_time


def test_no_yolospan_code_and_no_slot_on_the_layers_of_a_clocked_forward(monkeypatch):
    """torch's hook dispatch and yolospan's slot wrapper are off the layers: one traced call per forward."""
    model = Looped().eval()
    provider, exporter = _recorder()
    runs: list[str] = []
    run = _instrument.Instrumentation._run

    def counted(self, target, module, args, kwargs):
        runs.append(target.name)
        return run(self, target, module, args, kwargs)

    monkeypatch.setattr(_instrument.Instrumentation, "_run", counted)
    x = torch.zeros(1, 3, 8, 8)
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(x)  # describes the signature: the layers run as traced layer calls once
        assert runs == ["forward", "L0", "L1", "L2"]
        runs.clear()
        model(x)
        model(x)
        assert runs == ["forward", "forward"]
        for layer in model.layers:
            assert "_compiled_call_impl" not in layer.__dict__
            assert not layer._forward_hooks and not layer._forward_pre_hooks
    assert len([s for s in exporter.get_finished_spans() if s.name == "L1"]) == 3
    runs.clear()
    monkeypatch.setattr(_instrument, "_times_its_layers", lambda module: False)
    with yolospan.instrument(model, layers=True, tracer_provider=provider):  # the hook path, for contrast
        model(x)
        model(x)
    assert runs == ["forward", "L0", "L1", "L2"] * 2


def test_flops_need_no_extra_forward():
    model = Looped().eval()
    provider, exporter = _recorder()
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
        model(torch.zeros(1, 3, 8, 8))
    assert [layer.calls for layer in model.layers] == [2, 2, 2]
    conv = [s for s in exporter.get_finished_spans() if s.name == "L0"]
    assert [s.attributes[A.FLOPS_METHOD] for s in conv] == ["thop", "thop.cached"]
    assert conv[0].attributes[A.FLOPS] == conv[1].attributes[A.FLOPS] > 0


@pytest.mark.parametrize("fast", [True, False])
def test_a_raising_layer_is_an_error_as_on_the_hook_path(monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(_fast_spans, "emitter", lambda tracer, parent: None)
    model = Looped().eval()
    x = torch.zeros(1, 3, 8, 8)

    def forwards(clocked: bool):
        model.layers[1].fail = False
        provider, exporter = _recorder()
        with monkeypatch.context() as patch:
            if not clocked:
                patch.setattr(_instrument, "_times_its_layers", lambda module: False)
            with yolospan.instrument(model, layers=True, tracer_provider=provider):
                model(x)
                model.layers[1].fail = True
                exporter.clear()
                with pytest.raises(ValueError):
                    model(x)
        return exporter.get_finished_spans()

    clocked, hooked = forwards(True), forwards(False)
    assert model.clocks[-1] is None  # the hook path's forward
    assert [s.name for s in clocked] == ["L0", "L1", "forward"]
    assert content(clocked) == content(hooked)
    failed = clocked[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: layer went wrong"
    assert A.OUTPUT_COUNT not in failed.attributes and A.OUTPUT_COUNT in clocked[0].attributes
    assert clocked[0].end_time <= failed.start_time <= failed.end_time <= clocked[2].end_time


def test_dropped_forwards_do_no_layer_work():
    model = Looped().eval()
    provider, exporter = _recorder(sampler=ALWAYS_OFF)
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
        model(torch.zeros(1, 3, 8, 8))
    assert model.clocks == [None, None]
    assert exporter.get_finished_spans() == ()


def test_remove_leaves_no_trace():
    model = Looped().eval()
    provider, exporter = _recorder()
    handle = yolospan.instrument(model, layers=True, tracer_provider=provider)
    model(torch.zeros(1, 3, 8, 8))
    model(torch.zeros(1, 3, 8, 8))
    handle.remove()
    model.clocks.clear()
    exporter.clear()
    model(torch.zeros(1, 3, 8, 8))
    assert model.clocks == [None]
    assert exporter.get_finished_spans() == ()
    assert all("_compiled_call_impl" not in m.__dict__ for m in model.modules())
    assert yolospan.tracing.instrumentation_of(model) is None


def test_layers_false_and_uninstrumented_models_get_no_clock():
    model = Looped().eval()
    provider, _ = _recorder()
    model(torch.zeros(1, 3, 8, 8))
    with yolospan.instrument(model, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
    assert model.clocks == [None, None]
