"""Overhead of tracing a yolov5s 1x3x640x640 eval forward: untraced vs traced, interleaved in one run.

Four deep copies of one model take turns at four variants (a Latin square: in round r, copy c
runs variant (c + r) mod 4), so neither a copy's memory placement nor the order within a round
favours a variant. After each switch one untimed forward refills the FLOPs/attribute cache, so
the timed forward is the steady state of a long job. The garbage collector is frozen after
imports. Spans go through a BatchSpanProcessor to an exporter that drops them, which isolates
yolospan's own cost from any backend.

Wall-clock ratios on a shared 2-core machine wander by several percent from round to round, so
the script also reports the time spent inside yolospan's hooks (span start and end, attributes,
the SDK's work for them) per forward, measured in the same run, and that time over the untraced
median: the overhead without the noise of the convolutions around it. Last, it times the
OpenTelemetry SDK alone making the same spans with the same attributes back to back (the "SDK
floor"): no tracer that emits these spans through the SDK on the forward's thread can cost less.

On CUDA (``--device cuda``) every timed forward is synchronized before and after, outside the
forward, so its wall time runs from the first launch to the GPU's completion; two CUDA events
around it give the device time, printed in two more columns. ``--batch`` and ``--precision``
take several values and print one table per combination, in one process.

    python bench/trace_overhead.py [--rounds 40] [--model yolov5s] [--imgsz 640]
        [--device cpu|cuda] [--batch 1 16] [--precision fp32 fp16]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from yolospan import tracing
from yolospan.tracing import _instrument

VARIANTS = ("untraced", "model-level", "layers=True", "removed")


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def dropping_provider() -> tuple[TracerProvider, DropExporter]:
    """The benchmark's pipeline: a BatchSpanProcessor feeding an exporter that only counts."""
    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def switch(model: nn.Module, handle: yolospan.Instrumentation | None, variant: str, provider: TracerProvider):
    """Put ``model`` in ``variant``'s state; returns the live handle, if any."""
    if handle is not None:
        handle.remove()
    if variant == "model-level":
        return yolospan.instrument(model, tracer_provider=provider)
    if variant == "layers=True":
        return yolospan.instrument(model, layers=True, tracer_provider=provider)
    if variant == "removed":
        yolospan.instrument(model, layers=True, tracer_provider=provider).remove()
    return None


class HookClock:
    """Accumulates the time spent in yolospan's frame code (a traced call's open and close), per variant."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.variant = ""
        cls = _instrument.Instrumentation
        self._open, self._close = cls._open, cls._close
        clock = self

        def timed_open(instr: _instrument.Instrumentation, *args: object) -> None:
            start = time.perf_counter()
            clock._open(instr, *args)
            clock.add(time.perf_counter() - start)

        def timed_close(instr: _instrument.Instrumentation, *args: object) -> None:
            start = time.perf_counter()
            clock._close(instr, *args)
            clock.add(time.perf_counter() - start)

        cls._open, cls._close = timed_open, timed_close  # type: ignore[method-assign]

    def add(self, seconds: float) -> None:
        self.seconds[self.variant] = self.seconds.get(self.variant, 0.0) + seconds


def sdk_floor(model: nn.Module, x: torch.Tensor, reps: int = 200) -> tuple[float, int]:
    """Seconds the OpenTelemetry SDK alone needs for one ``layers=True`` forward's spans, and their count.

    The same names, attributes, parents and timestamps as yolospan emits, made back to back
    in a tight loop with no model and no hook around them: a lower bound for any tracer that
    creates these spans through the SDK on the forward's thread.
    """
    recorder = InMemorySpanExporter()
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(recorder))
    with yolospan.instrument(model, layers=True, tracer_provider=recording):
        model(x)
        recorder.clear()
        model(x)  # the steady state: FLOPs and attributes come from the cache
        flush_device_time()
    finished = recorder.get_finished_spans()
    root = next(s for s in finished if s.parent is None)
    layers = [s for s in finished if s is not root]

    def plain(span: ReadableSpan) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}

    root_attrs = plain(root)
    layer_spans = [(s.name, plain(s), s.start_time, s.end_time) for s in layers]
    provider, _ = dropping_provider()  # as the timed forwards', counted apart from them
    tracer = provider.get_tracer("sdk-floor")
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        forward = tracer.start_span(root.name, attributes=root_attrs)
        context = trace.set_span_in_context(forward)
        for name, attrs, start_ns, end_ns in layer_spans:
            layer = tracer.start_span(name, context=context, attributes=attrs, start_time=start_ns)
            layer.end(end_time=end_ns)
        forward.end()
        times.append(time.perf_counter() - start)
    provider.shutdown()
    return statistics.median(times), len(finished)


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
"""``--precision`` choices: the autocast dtype of the forwards (None: plain float32)."""


class Timer:
    """Times one forward: wall clock on the CPU; on CUDA the wall clock up to the GPU's completion
    (synchronized before and after, outside the forward) and the device time between two events."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start_event = torch.cuda.Event(enable_timing=True)
            self.end_event = torch.cuda.Event(enable_timing=True)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> tuple[float, float | None]:
        if not self.cuda:
            start = time.perf_counter()
            model(x)
            return time.perf_counter() - start, None
        torch.cuda.synchronize()
        start = time.perf_counter()
        self.start_event.record()
        model(x)
        self.end_event.record()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        return wall, self.start_event.elapsed_time(self.end_event) / 1e3


def flush_device_time() -> None:
    """Wait for spans still waiting for their device time (on CUDA), so none is left between configs."""
    flush = getattr(tracing, "flush_device_time", None)
    if flush is not None:
        flush()


def run_square(
    copies: list[nn.Module], x: torch.Tensor, rounds: int, autocast: torch.dtype | None, clock: HookClock
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """One Latin square over ``copies``: wall and device seconds per variant, and the spans made."""
    provider, exporter = dropping_provider()
    handles: list[yolospan.Instrumentation | None] = [None] * len(copies)
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    device: dict[str, list[float]] = {name: [] for name in VARIANTS}
    timer = Timer(x.device)
    amp = torch.autocast(x.device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        for model in copies:
            model(x)  # warm the allocator and kernels at this shape and precision
        for r in range(rounds):
            for c, model in enumerate(copies):
                variant = VARIANTS[(c + r) % len(VARIANTS)]
                handles[c] = switch(model, handles[c], variant, provider)
                clock.variant = ""
                model(x)  # untimed: refills the per-signature cache after the switch
                clock.variant = variant
                seconds, on_device = timer(model, x)
                clock.variant = ""
                wall[variant].append(seconds)
                if on_device is not None:
                    device[variant].append(on_device)
        for handle in handles:
            if handle is not None:
                handle.remove()
    flush_device_time()
    provider.shutdown()
    return wall, device, exporter.count


def print_table(
    title: str,
    wall: dict[str, list[float]],
    device: dict[str, list[float]],
    hooks: dict[str, float],
) -> None:
    base_median = statistics.median(wall["untraced"])
    base_min = min(wall["untraced"])
    on_device = bool(device["untraced"])
    print(title)
    header = f"{'variant':<12} {'median ms':>10} {'min ms':>8} {'ratio(median)':>14} {'ratio(min)':>11}"
    header += f" {'in hooks ms':>12} {'1 + hooks/median':>17}"
    if on_device:
        header += f" {'device ms':>10} {'ratio(device)':>14}"
    print(header)
    for name in VARIANTS:
        med, low = statistics.median(wall[name]), min(wall[name])
        ratios = f"{med / base_median:>14.4f} {low / base_min:>11.4f}"
        in_hooks = hooks.get(name, 0.0) / len(wall[name])
        line = (
            f"{name:<12} {med * 1e3:>10.2f} {low * 1e3:>8.2f} {ratios} {in_hooks * 1e3:>12.3f} "
            f"{1 + in_hooks / base_median:>17.4f}"
        )
        if on_device:
            dev = statistics.median(device[name])
            line += f" {dev * 1e3:>10.3f} {dev / statistics.median(device['untraced']):>14.4f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40, help="a multiple of 4 balances the square")
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (cpu)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes, one table each (1)")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=sorted(PRECISIONS),
        help="fp32, or autocast to fp16/bf16; one table each (fp32)",
    )
    args = parser.parse_args()
    if any(b < 1 for b in args.batch):
        parser.error("--batch: batch sizes must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")

    base = yolospan.build_model(args.model).eval().to(device)
    copies = [copy.deepcopy(base) for _ in VARIANTS]
    clock = HookClock()
    gc.collect()
    gc.freeze()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(
            f"device {props.name} ({props.multi_processor_count} SMs), torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}"
        )
    first: tuple[torch.Tensor, float] | None = None  # the first table's input and untraced median
    for batch in args.batch:
        for precision in args.precision:
            x = torch.zeros(batch, 3, args.imgsz, args.imgsz, device=device)
            clock.seconds = {}
            wall, on_device, spans = run_square(copies, x, args.rounds, PRECISIONS[precision], clock)
            threads = f"{torch.get_num_threads()} threads"
            print_table(
                f"{args.model} {batch}x3x{args.imgsz}x{args.imgsz} eval forward, {precision}, "
                f"{args.rounds} rounds x {len(VARIANTS)} copies, torch {torch.__version__}, {threads}, "
                f"{device}, {spans} spans",
                wall,
                on_device,
                dict(clock.seconds),
            )
            if first is None:
                first = (x, statistics.median(wall["untraced"]))
    assert first is not None
    first_x, untraced_median = first
    with torch.inference_mode():
        floor, floor_spans = sdk_floor(copies[0], first_x)
    print(
        f"SDK floor: the same {floor_spans} spans and attributes "
        f"made back to back, no hooks: {floor * 1e3:.3f} ms per forward, 1 + floor/(first table's "
        "untraced median) = "
        f"{1 + floor / untraced_median:.4f}"
    )


if __name__ == "__main__":
    main()
