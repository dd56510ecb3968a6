"""Achieved FLOP/s on traced forwards; the device-time path driven on the CPU by a gated fake clock."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import _timing
from yolospan.tracing._device_time import Resolver

WAIT = 10.0  # seconds; only ever reached when the code under test is broken


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 1))


def test_on_the_cpu_every_span_with_flops_has_its_achieved_rate_from_the_wall_clock(spans):
    model = tiny().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 16, 16))
    finished = list(spans)
    assert len(finished) == 4
    for span in finished:
        flops = span.attributes[A.FLOPS]
        seconds = (span.readable.end_time - span.readable.start_time) / 1e9
        assert span.attributes[A.ACHIEVED_FLOPS_PER_S] == pytest.approx(flops / seconds, rel=1e-6)
        assert A.DEVICE_TIME_MS not in span.attributes  # the CPU's wall clock is its time
        assert A.PEAK_FRACTION not in span.attributes and A.PEAK_FLOPS_PER_S not in span.attributes
    assert spans.one("forward").attributes[A.ACHIEVED_FLOPS_PER_S] > 0


def test_a_forward_that_raised_has_no_rate(spans):
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider), pytest.raises(RuntimeError):
        model(torch.zeros(1, 5, 8, 8))
    for span in spans:
        assert A.FLOPS not in span.attributes and A.ACHIEVED_FLOPS_PER_S not in span.attributes


class GatedClock:
    """A device whose work completes only when the test opens the gate; each mark is 2 ms after the last."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.ticks = 0
        self.marked_on: set[str] = set()
        self.read_on: set[str] = set()
        self.released = 0

    def mark(self) -> int:
        self.marked_on.add(threading.current_thread().name)
        self.ticks += 1
        return self.ticks

    def elapsed_ms(self, start: int, end: int) -> float:
        self.read_on.add(threading.current_thread().name)
        if not self.gate.wait(WAIT):
            raise AssertionError("the gate was never opened")
        return 2.0 * (end - start)

    def release(self, mark: int) -> None:
        self.released += 1


@pytest.fixture
def device(monkeypatch):
    """Every forward takes the device-time path, on a gated fake clock and a private resolver."""
    clock, resolver = GatedClock(), Resolver(name="test-device-time")
    monkeypatch.setattr(_timing, "clock_for", lambda attrs: clock)
    monkeypatch.setattr(_timing, "resolver", lambda: resolver)
    monkeypatch.setattr(_timing, "span_rate_attributes", _with_peak(_timing.span_rate_attributes))
    yield clock
    clock.gate.set()
    resolver.shutdown(WAIT)


def _with_peak(rate):
    """The real arithmetic with a known peak of 1e12 FLOP/s, so the fraction is checked too."""
    return lambda attrs, seconds: rate(attrs, seconds, peak_of=lambda device, dtype: 1e12)


def test_device_times_are_read_on_a_worker_and_spans_end_with_their_wall_clock_times(spans, device):
    model = tiny().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 16, 16))
        returned = time.time_ns()
        assert spans.exporter.get_finished_spans() == ()  # the device has not got there yet
        caller = threading.current_thread().name
        assert device.marked_on == {caller} and caller not in device.read_on  # the worker may be waiting
        device.gate.set()
        assert yolospan.tracing.flush_device_time(WAIT)
    assert device.read_on == {"test-device-time"}
    finished = list(spans)
    assert [s.name for s in finished] == ["forward", "Conv2d", "SiLU", "Conv2d"]
    forward = spans.one("forward")
    assert forward.attributes[A.DEVICE_TIME_MS] == 2.0 * 7  # marks 1 and 8: three layers in between
    layer_times = [s.attributes[A.DEVICE_TIME_MS] for s in finished[1:]]
    assert layer_times == [2.0, 2.0, 2.0]
    for span in finished:
        seconds = span.attributes[A.DEVICE_TIME_MS] / 1e3
        achieved = span.attributes[A.FLOPS] / seconds
        assert span.attributes[A.ACHIEVED_FLOPS_PER_S] == pytest.approx(achieved)
        assert span.attributes[A.PEAK_FLOPS_PER_S] == 1e12
        assert span.attributes[A.PEAK_FRACTION] == pytest.approx(achieved / 1e12)
        assert span.readable.end_time <= returned  # the time recorded in the hook, not the worker's
        assert span.parent is None or span.parent.name == "forward"
    assert device.released == 8


def test_the_pipelines_flush_waits_for_device_times(device):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from yolospan.otel import DeviceTimeFlush

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(DeviceTimeFlush())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = tiny().eval()
    with yolospan.instrument(model, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
    assert exporter.get_finished_spans() == ()
    threading.Timer(0.05, device.gate.set).start()
    assert provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["forward"]


def test_the_span_recorder_waits_for_device_times(spans, device):
    model = tiny().eval()
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 8, 8))
    threading.Timer(0.05, device.gate.set).start()
    assert spans.one("forward").attributes[A.DEVICE_TIME_MS] == 2.0


def test_non_recording_forwards_put_no_marks(device):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    model = tiny().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)):
        model(torch.zeros(1, 3, 8, 8))
    assert device.ticks == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_spans_carry_device_time_and_achieved_rate(spans):
    model = tiny().eval().cuda()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(8, 3, 64, 64, device="cuda"))
    finished = list(spans)  # the recorder waits for the device times
    assert len(finished) == 4
    for span in finished:
        assert span.attributes[A.DEVICE_TIME_MS] > 0
        assert span.attributes[A.ACHIEVED_FLOPS_PER_S] > 0
    forward = spans.one("forward")
    assert sum(s.attributes[A.DEVICE_TIME_MS] for s in finished[1:]) <= forward.attributes[A.DEVICE_TIME_MS]


def test_layer_spans_made_on_the_worker_go_to_the_provider_routed_on_the_callers_thread(spans, device):
    model = tiny().eval()
    with yolospan.use_tracer_provider(spans.provider), yolospan.instrument(model, layers=True):
        model(torch.zeros(1, 3, 8, 8))
    device.gate.set()
    assert [s.name for s in spans] == ["forward", "Conv2d", "SiLU", "Conv2d"]
