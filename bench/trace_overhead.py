"""Overhead of tracing a yolov5s 1x3x640x640 eval forward: untraced vs traced, interleaved in one run.

Variants run round-robin (order rotated every round) on deep copies of one model, each with its
own long-lived instrumentation, so every variant sees the same machine state and FLOPs come from
the steady-state cache as they do in a long job. The garbage collector is frozen after imports.
Spans go through a BatchSpanProcessor to an exporter that drops them, which isolates yolospan's
own cost from any backend.

    python bench/trace_overhead.py [--rounds 30] [--model yolov5s] [--imgsz 640]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import yolospan


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))

    base = yolospan.build_model(args.model).eval()
    models = {name: copy.deepcopy(base) for name in ("untraced", "model-level", "layers=True", "removed")}
    yolospan.instrument(models["model-level"], tracer_provider=provider)
    yolospan.instrument(models["layers=True"], layers=True, tracer_provider=provider)
    yolospan.instrument(models["removed"], layers=True, tracer_provider=provider).remove()
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)

    def timed(model: torch.nn.Module) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            model(x)
            return time.perf_counter() - start

        return run

    runs = {name: timed(model) for name, model in models.items()}
    gc.collect()
    gc.freeze()
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for name in names:
                runs[name]()
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                samples[name].append(runs[name]())
    provider.shutdown()

    base_median = statistics.median(samples["untraced"])
    base_min = min(samples["untraced"])
    print(
        f"{args.model} 1x3x{args.imgsz}x{args.imgsz} eval forward, {args.rounds} interleaved rounds, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {exporter.count} spans exported"
    )
    print(f"{'variant':<12} {'median ms':>10} {'min ms':>8} {'ratio(median)':>14} {'ratio(min)':>11}")
    for name in names:
        med, low = statistics.median(samples[name]), min(samples[name])
        ratios = f"{med / base_median:>14.4f} {low / base_min:>11.4f}"
        print(f"{name:<12} {med * 1e3:>10.2f} {low * 1e3:>8.2f} {ratios}")


if __name__ == "__main__":
    main()
