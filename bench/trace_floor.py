"""Issue 10's measurement: yolov5s 1x3x640x640 eval forwards, untraced vs traced, against the floors.

(`trace_overhead.py` is the same comparison across devices, batches and precisions.)

Five variants, each on its own deep copy of one model, take turns in a Latin square (in round r,
copy c runs variant (c + r) mod 5), so neither a copy's memory placement nor the order within a
round favours a variant:

- untraced;
- model-level: ``instrument(model)``;
- layers=True: ``instrument(model, layers=True)``; the YOLO model times its own layers (the
  native layer clock);
- hook path: ``instrument(generic, layers=True)``, where ``generic`` is a plain ``nn.Module`` that
  holds the same layers as direct children and runs the same loop, so every layer call goes
  through yolospan's call slot as for any module;
- removed: instrumented with ``layers=True``, then ``remove()``.

After each switch one untimed forward refills the per-signature caches, so the timed forward is
the steady state of a long job. The garbage collector is frozen after imports. Spans go through
a BatchSpanProcessor to an exporter that drops them, which isolates yolospan's own cost.

The ratios are medians of paired ratios: in each round, each variant's time over the untraced
time of the same round. The script also adds up the time spent inside yolospan's frame code (the
traced call's open and close: span start and end, attributes, the layer spans) per forward.
``--diff-imgsz`` adds a second interleaved run at a smaller input and reports each variant's
median paired difference from untraced there, over the untraced median at ``--imgsz``: yolospan's
cost per forward does not grow with the image, while the noise of the convolutions does.

Last, the floors: the fast path alone making one forward's layer spans from a learned signature
and the clock (``fast floor``), and the OpenTelemetry tracer API making the same spans and
attributes (``API floor``), each back to back in a tight loop.

    python bench/trace_floor.py [--rounds 40] [--model yolov5s] [--imgsz 640] [--diff-imgsz 160]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from typing import Any

import torch
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan

# The span pipeline and the clock of yolospan's own code are trace_overhead.py's (same folder).
from trace_overhead import HookClock as FrameClock
from trace_overhead import dropping_provider
from yolospan.tracing import _clock, get_tracer

VARIANTS = ("untraced", "model-level", "layers=True", "hook path", "removed")


class GenericLoop(nn.Module):
    """The YOLO model's layers and loop in a plain module: not a LayeredModule, not a ClockedModule."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for index, layer in enumerate(model.model):  # type: ignore[arg-type]
            self.add_module(str(index), layer)
        self._plan = model._plan

    def forward(self, image: torch.Tensor) -> Any:
        x: Any = image
        saved: list[Any] = []
        for layer, (source, keep) in zip(self.children(), self._plan, strict=True):
            if source != -1:
                x = saved[source] if isinstance(source, int) else [x if j == -1 else saved[j] for j in source]
            x = layer(x)
            saved.append(x if keep else None)
        return x


class Copy:
    """One deep copy of the model, its generic twin, and its current variant's handle."""

    def __init__(self, base: nn.Module) -> None:
        self.model = copy.deepcopy(base)
        self.generic = GenericLoop(self.model)
        self.handle: yolospan.Instrumentation | None = None

    def switch(self, variant: str, provider: TracerProvider) -> nn.Module:
        """Put this copy in ``variant``'s state; returns the module to call."""
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        if variant == "model-level":
            self.handle = yolospan.instrument(self.model, tracer_provider=provider)
        elif variant == "layers=True":
            self.handle = yolospan.instrument(self.model, layers=True, tracer_provider=provider)
        elif variant == "hook path":
            self.handle = yolospan.instrument(self.generic, layers=True, tracer_provider=provider)
            return self.generic
        elif variant == "removed":
            yolospan.instrument(self.model, layers=True, tracer_provider=provider).remove()
        return self.model


def interleaved(
    copies: list[Copy],
    x: torch.Tensor,
    rounds: int,
    provider: TracerProvider,
    clock: FrameClock,
    deadline: float = float("inf"),
) -> dict[str, list[float]]:
    """Seconds per timed forward, per variant, in round order (index r is round r for every variant).

    Past ``deadline`` (``time.monotonic()``), stops after the next whole Latin square.
    """
    samples: dict[str, list[float]] = {name: [0.0] * rounds for name in VARIANTS}
    for r in range(rounds):
        if r and r % len(VARIANTS) == 0 and time.monotonic() > deadline:
            samples = {name: times[:r] for name, times in samples.items()}
            break
        for c, each in enumerate(copies):
            variant = VARIANTS[(c + r) % len(VARIANTS)]
            model = each.switch(variant, provider)
            clock.variant = ""
            model(x)  # untimed: refills the per-signature cache after the switch
            clock.variant = variant
            start = time.perf_counter()
            model(x)
            samples[variant][r] = time.perf_counter() - start
            clock.variant = ""
    for each in copies:
        each.switch("untraced", provider)
    return samples


def floors(model: nn.Module, x: torch.Tensor, reps: int = 300) -> tuple[float, float, int]:
    """Seconds per forward for (the fast path, the tracer API) making one forward's layer spans,
    back to back in a tight loop, and how many spans that is."""
    recorder = InMemorySpanExporter()
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(recorder))
    with yolospan.instrument(model, layers=True, tracer_provider=recording) as handle:
        model(x)
        recorder.clear()
        model(x)  # the steady state: attributes come from the learned signature
        learned = next(call.layers for call in handle._targets[0].calls.values() if call.layers)
    finished = recorder.get_finished_spans()
    layers = [s for s in finished if s.parent is not None]
    ticks = [t for s in layers for t in (s.start_time or 0, s.end_time or 0)]
    provider, _ = dropping_provider()  # as the timed forwards', counted apart from them
    tracer = get_tracer(provider)
    extra: dict[str, Any] = {}
    fast = []
    for _ in range(reps):
        forward = tracer.start_span("forward")
        start = time.perf_counter()
        _clock.emit(tracer, forward, learned, ticks, extra, None, None)
        fast.append(time.perf_counter() - start)
        forward.end()

    def plain(span: ReadableSpan) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}

    api_spans = [(s.name, plain(s), s.start_time, s.end_time) for s in layers]
    api = []
    for _ in range(reps):
        forward = tracer.start_span("forward")
        context = trace.set_span_in_context(forward)
        start = time.perf_counter()
        for name, attrs, start_ns, end_ns in api_spans:
            layer = tracer.start_span(name, context=context, attributes=attrs, start_time=start_ns)
            layer.end(end_time=end_ns)
        api.append(time.perf_counter() - start)
        forward.end()
    provider.shutdown()
    return statistics.median(fast), statistics.median(api), len(layers)


def paired(samples: dict[str, list[float]], name: str) -> tuple[float, float]:
    """Median of the paired ratios and of the paired differences (seconds) against untraced."""
    pairs = list(zip(samples[name], samples["untraced"], strict=True))
    return statistics.median(t / u for t, u in pairs), statistics.median(t - u for t, u in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40, help="a multiple of 5 balances the square")
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--diff-imgsz", type=int, default=0, help="also measure differences at this size")
    parser.add_argument("--diff-rounds", type=int, default=0, help="rounds at --diff-imgsz (default 4x)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="stop adding rounds (after a whole square) past 60%% of this many seconds (95%% in total)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    budget = args.budget_s or float("inf")

    provider, exporter = dropping_provider()
    base = yolospan.build_model(args.model).eval()
    copies = [Copy(base) for _ in VARIANTS]
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)
    clock = FrameClock()
    gc.collect()
    gc.freeze()
    small: dict[str, list[float]] | None = None
    with torch.inference_mode():
        for each in copies:
            each.model(x)  # warm the allocator and kernels
        samples = interleaved(copies, x, args.rounds, provider, clock, started + 0.6 * budget)
        rounds = len(samples["untraced"])
        in_frames = {name: clock.seconds.get(name, 0.0) / rounds for name in VARIANTS}
        if args.diff_imgsz:
            small_x = torch.zeros(1, 3, args.diff_imgsz, args.diff_imgsz)
            small_rounds = args.diff_rounds or 4 * args.rounds
            small = interleaved(copies, small_x, small_rounds, provider, clock, started + 0.95 * budget)
        fast_floor, api_floor, floor_spans = floors(copies[0].model, x)
    provider.shutdown()

    base_median = statistics.median(samples["untraced"])
    print(
        f"{args.model} 1x3x{args.imgsz}x{args.imgsz} eval forward, {rounds} rounds x {len(VARIANTS)} "
        f"copies, torch {torch.__version__}, {torch.get_num_threads()} threads, {exporter.count} spans"
    )
    header = f"{'variant':<12} {'median ms':>10} {'paired ratio':>13} {'paired diff ms':>15}"
    print(f"{header} {'in yolospan ms':>15} {'1 + yolospan/median':>20}")
    for name in VARIANTS:
        ratio, diff = paired(samples, name)
        spent = in_frames[name]
        print(
            f"{name:<12} {statistics.median(samples[name]) * 1e3:>10.2f} {ratio:>13.4f} {diff * 1e3:>15.3f} "
            f"{spent * 1e3:>15.3f} {1 + spent / base_median:>20.4f}"
        )
    if small is not None:
        print(
            f"at 1x3x{args.diff_imgsz}x{args.diff_imgsz}, {len(small['untraced'])} rounds: "
            f"median paired difference from untraced ({statistics.median(small['untraced']) * 1e3:.2f} ms), "
            f"and 1 + difference / untraced median at {args.imgsz} ({base_median * 1e3:.2f} ms)"
        )
        for name in VARIANTS[1:]:
            _, diff = paired(small, name)
            print(f"{name:<12} {diff * 1e3:>10.3f} {1 + diff / base_median:>13.4f}")
    print(
        f"API floor: the tracer API making one forward's {floor_spans} layer spans back to back: "
        f"{api_floor * 1e3:.3f} ms, 1 + floor/median = {1 + api_floor / base_median:.4f}"
    )
    print(
        f"fast floor: the fast path making the same {floor_spans} layer spans back to back: "
        f"{fast_floor * 1e3:.3f} ms, 1 + floor/median = {1 + fast_floor / base_median:.4f}"
    )


if __name__ == "__main__":
    main()
