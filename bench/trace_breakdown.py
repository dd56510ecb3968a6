"""Where yolospan's time per traced forward goes: median milliseconds in each part of a traced call.

Wraps the parts of the tracing core (the traced call's open and close, the SDK's ``start_span``
and ``Span.end``, the attributes, the layer spans) in timers and runs steady-state forwards of one
model: model-level, ``layers=True`` (the native layer clock), then the hook path (the same layers
in a plain module, `trace_overhead.GenericLoop`, so each layer call goes through yolospan's call
slot). Each figure is the median over forwards of a part's time summed within the forward (the
hook path runs most parts once per layer). The timers add to what they time, most where a part
runs per layer; the split, not the total, is the point (`trace_overhead.py` measures the total).

    python bench/trace_breakdown.py [--forwards 15] [--model yolov5s] [--imgsz 640]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import yolospan
from trace_overhead import DropExporter, GenericLoop
from yolospan.tracing import _clock, _fast_spans, _instrument, _pending, _script, _slot, _steady, get_tracer

FOLLOWED = "layer calls followed (learned hook path)"
OWN_WORK = "(the modules' own calls inside the slot)"
"""Not a part of yolospan: subtracted from ``FOLLOWED``, which runs each layer inside its timer."""

PARTS: list[tuple[Any, str, str]] = [
    (_slot, "stepping_aside", "slot: compile/trace check (every call)"),
    (_script.Follower, "step", FOLLOWED),
    (_instrument.Instrumentation, "_open", "open (before the call)"),
    (sdk_trace.Tracer, "start_span", "  Tracer.start_span"),
    (_fast_spans.Emitter, "start", "  span start (SDK span, no tracer API)"),
    (_steady.ContextReading, "gives", "  context check (read again if it changed)"),
    (_steady.ContextReading, "__init__", "  context read (it changed)"),
    (_instrument.Instrumentation, "_describe", "  input attributes (cached per signature)"),
    (_instrument.Instrumentation, "_close", "close (after the call)"),
    (_steady.SteadySpan, "source", "  outputs check (a learned signature)"),
    (_instrument.Instrumentation, "_complete", "  output attributes and FLOPs"),
    (_instrument, "_apply", "  forward span's attributes"),
    (_clock, "emit", "  layer spans from the clock"),
    (_fast_spans, "emit_frames", "  layer spans from the layer calls"),
    (_instrument.otel_context, "detach", "  context detach"),
    (sdk_trace._Span, "end", "  Span.end"),
    (_pending.PendingSpan, "end", "  forward span handed over finished"),
    (_pending.PendingSpan, "end_late", "  forward span handed over, attributes late"),
]


def timed(owner: Any, name: str, label: str, forward: dict[str, float]) -> None:
    """Add each call's time to ``forward[label]`` (the current forward's sums)."""
    function: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            forward[label] = forward.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def time_layer_work(forward: dict[str, float]) -> None:
    """Add the layers' own calls (a layer slot's module call) to ``forward[OWN_WORK]``."""
    function = _slot.CallSlot.call

    def wrapper(target: _slot.CallSlot, *args: Any) -> Any:
        if not target.layer:
            return function(target, *args)
        start = time.perf_counter()
        try:
            return function(target, *args)
        finally:
            forward[OWN_WORK] = forward.get(OWN_WORK, 0.0) + time.perf_counter() - start

    _slot.CallSlot.call = wrapper  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--forwards", type=int, default=15)
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    get_tracer(provider)
    model = yolospan.build_model(args.model).eval()
    variants = [
        ("model-level", model, False),
        ("layers=True", model, True),
        ("hook path", GenericLoop(model), True),
    ]
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)
    forward: dict[str, float] = {}
    for owner, name, label in PARTS:
        timed(owner, name, label, forward)
    time_layer_work(forward)
    gc.collect()
    gc.freeze()
    print(
        f"{args.model} 1x3x{args.imgsz}x{args.imgsz} eval forward, median ms per forward of {args.forwards}"
    )
    for title, module, layers in variants:
        times: dict[str, list[float]] = {}
        with torch.inference_mode(), yolospan.instrument(module, layers=layers, tracer_provider=provider):
            module(x)
            module(x)
            for _ in range(args.forwards):
                forward.clear()
                module(x)
                if FOLLOWED in forward:  # yolospan's own part of it
                    forward[FOLLOWED] -= forward.get(OWN_WORK, 0.0)
                for label, seconds in forward.items():
                    times.setdefault(label, []).append(seconds)
        print(title)
        for _, _, label in PARTS:
            if label in times and label != OWN_WORK:
                print(f"{label:<44} {statistics.median(times[label]) * 1e3:8.3f}")
    provider.shutdown()


if __name__ == "__main__":
    main()
