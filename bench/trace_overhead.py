"""Overhead of tracing a yolov5s 1x3x640x640 eval forward: untraced vs traced, interleaved in one run.

Four deep copies of one model take turns at four variants (a Latin square: in round r, copy c
runs variant (c + r) mod 4), so neither a copy's memory placement nor the order within a round
favours a variant. After each switch one untimed forward refills the FLOPs/attribute cache, so
the timed forward is the steady state of a long job. The garbage collector is frozen after
imports. Spans go through a BatchSpanProcessor to an exporter that drops them, which isolates
yolospan's own cost from any backend.

    python bench/trace_overhead.py [--rounds 40] [--model yolov5s] [--imgsz 640]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from collections.abc import Sequence

import torch
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from torch import nn

import yolospan

VARIANTS = ("untraced", "model-level", "layers=True", "removed")


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40, help="a multiple of 4 balances the square")
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    base = yolospan.build_model(args.model).eval()
    copies = [copy.deepcopy(base) for _ in VARIANTS]
    handles: list[yolospan.Instrumentation | None] = [None] * len(copies)
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    gc.collect()
    gc.freeze()
    with torch.inference_mode():
        for model in copies:
            model(x)  # warm the allocator and kernels
        for r in range(args.rounds):
            for c, model in enumerate(copies):
                variant = VARIANTS[(c + r) % len(VARIANTS)]
                handles[c] = switch(model, handles[c], variant, provider)
                model(x)  # untimed: refills the per-signature cache after the switch
                start = time.perf_counter()
                model(x)
                samples[variant].append(time.perf_counter() - start)
    provider.shutdown()

    base_median = statistics.median(samples["untraced"])
    base_min = min(samples["untraced"])
    print(
        f"{args.model} 1x3x{args.imgsz}x{args.imgsz} eval forward, {args.rounds} rounds x {len(VARIANTS)} "
        f"copies, torch {torch.__version__}, {torch.get_num_threads()} threads, {exporter.count} spans"
    )
    print(f"{'variant':<12} {'median ms':>10} {'min ms':>8} {'ratio(median)':>14} {'ratio(min)':>11}")
    for name in VARIANTS:
        med, low = statistics.median(samples[name]), min(samples[name])
        ratios = f"{med / base_median:>14.4f} {low / base_min:>11.4f}"
        print(f"{name:<12} {med * 1e3:>10.2f} {low * 1e3:>8.2f} {ratios}")


if __name__ == "__main__":
    main()
