"""Issue 10's measurement: yolov5s eval forwards, untraced vs traced, interleaved in one run, and the floors.

Six variants, each on its own deep copy of one model, take turns in a Latin square (in round r,
copy c runs variant (c + r) mod 6), so neither a copy's memory placement nor the order within a
round favours a variant:

- untraced;
- model-level: ``instrument(model)``;
- layers=True: ``instrument(model, layers=True)``; the YOLO model times its own layers (the
  native layer clock);
- hook path: ``instrument(generic, layers=True)``, where ``generic`` is a plain ``nn.Module`` that
  holds the same layers as direct children and runs the same loop, so every layer call goes
  through yolospan's call slot as for any module;
- removed: instrumented with ``layers=True``, then ``remove()``;
- slot only: yolospan's call slot on the model with an owner that only calls through: the cost of
  the dispatch every traced call goes through (the compile/trace check, the caller's frame read,
  the ``try``), with no span, no attribute: the floor under model-level tracing in this design.

After each switch two untimed forwards refill the per-signature caches (`WARMUP_FORWARDS`), so
the timed forward is the steady state of a long job. The garbage collector is frozen after
imports. Spans go through a BatchSpanProcessor to an exporter that drops them, which isolates
yolospan's own cost from any backend. ``--batch`` and ``--precision`` take several values: one
square and one table per combination, in one process.

Columns of each table (medians over the rounds):

- median ms: the variant's forward time;
- paired ratio, paired diff ms: medians of the paired ratios and differences: in each round, the
  variant's time over (minus) the untraced time of the same round;
- in yolospan ms: the time spent inside yolospan's frame code during the timed forwards (the
  traced call's open and close: span start and end, attributes, the layer spans; and a followed
  layer call on the hook path, less the layer's own work) per forward,
  and ``1 + yolospan/median`` that time over the untraced median: the overhead without the noise
  of the convolutions around it (on CUDA, the forward's own thread only). Only the main
  table's square runs with these timers: the differences below (``--diff-imgsz``), the judged
  measure, are taken without them, as the timers cost time of their own;
- on CUDA (``--device cuda``) every timed forward is synchronized before and after, outside the
  forward, so its wall time runs from the first launch to the GPU's completion; two CUDA events
  around it give the device time, in two more columns (its median, and over the untraced one).

``--diff-imgsz`` adds, after each table, a second interleaved run at a smaller input and reports
each variant's median paired difference from untraced there, over the untraced median of the
table: yolospan's cost per forward does not grow with the image, while the noise of the
convolutions does.

Last, the floors, against the first table's untraced median (``1 + floor/median``), at its input
and precision:

- one forward's layer spans made back to back in a tight loop from a learned signature and its
  clock readings: by the fast path (``fast floor``) and by the OpenTelemetry tracer API with the
  same spans and attributes (``API floor``); on CUDA, learned from a CPU copy of the model;
- one model-level forward span, measured around real forwards of the same (untraced) model: each
  round times the work before the forward plus the work after it, for three ways of making the
  span, in turn (median over the rounds, and of each half): ``api``, ``tracer.start_span`` and
  attaching it as the current span before, detaching and ``span.end()`` after; ``direct``, the
  same with the span started by yolospan's SDK shortcut (``_fast_spans.starter(tracer).start``);
  ``deferred``, no span object while the forward runs (a ``NonRecordingSpan`` with ids from the
  tracer's id generator is current), then one finished ``ReadableSpan`` handed to the span
  processor's ``on_end``. Right after a forward the CPU caches are cold, so a bare span there costs
  several times its tight-loop price: the floor for model-level tracing.

``--budget-s`` stops adding rounds (after a whole square, or a floor round) once a share of its
time is spent: the tables share 85 % of it (each table 60 % of its part, its ``--diff-imgsz`` run
the rest), the model-level floors end by 95 %.

    python bench/trace_overhead.py [--rounds 40] [--model yolov5s] [--imgsz 640] [--device cpu|cuda]
        [--batch 1 16] [--precision fp32 fp16] [--diff-imgsz 160] [--diff-rounds N]
        [--floor-rounds N] [--budget-s S]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from torch import nn

import yolospan
from yolospan import tracing
from yolospan.tracing import _clock, _fast_spans, _instrument, _script, _slot, get_tracer

VARIANTS = ("untraced", "model-level", "layers=True", "hook path", "removed", "slot only")
FORWARD_FLOORS = ("api", "direct", "deferred")
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
"""``--precision`` choices: the autocast dtype of the forwards (None: plain float32)."""


WARMUP_FORWARDS = 2
"""After a switch: the first forward of a signature learns it (input attributes, FLOPs counted,
a clocked model's layers described); the second settles what a later forward reuses (the
attribute sets validated with ``thop.cached``), as in every forward of a long job after its first."""


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


class HookClock:
    """Accumulates the time spent in yolospan's frame code (a traced call's open and close, and a
    followed layer call less the layer's own work), per variant, while installed (a ``with``
    block): the timers cost time of their own, so the squares whose differences are the judged
    measure run without them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.variant = ""
        self.layer_work = 0.0  # the layers' own calls inside followed steps, so far
        cls = _instrument.Instrumentation
        self._open, self._close = cls._open, cls._close
        self._step, self._call = _script.Follower.step, _slot.CallSlot.call

    def __enter__(self) -> HookClock:
        cls = _instrument.Instrumentation
        clock = self

        def timed_open(instr: _instrument.Instrumentation, *args: object) -> None:
            start = time.perf_counter()
            clock._open(instr, *args)
            clock.add(time.perf_counter() - start)

        def timed_close(instr: _instrument.Instrumentation, *args: object) -> None:
            start = time.perf_counter()
            clock._close(instr, *args)
            clock.add(time.perf_counter() - start)

        def timed_step(follower: _script.Follower, *args: Any) -> Any:
            before = clock.layer_work
            start = time.perf_counter()
            try:
                return clock._step(follower, *args)
            finally:
                clock.add(time.perf_counter() - start - (clock.layer_work - before))

        def timed_call(target: _slot.CallSlot, *args: Any) -> Any:
            if not target.layer:
                return clock._call(target, *args)
            start = time.perf_counter()
            try:
                return clock._call(target, *args)
            finally:
                clock.layer_work += time.perf_counter() - start

        cls._open, cls._close = timed_open, timed_close  # type: ignore[method-assign]
        _script.Follower.step = timed_step  # type: ignore[method-assign]
        _slot.CallSlot.call = timed_call  # type: ignore[method-assign]
        return self

    def add(self, seconds: float) -> None:
        self.seconds[self.variant] = self.seconds.get(self.variant, 0.0) + seconds

    def __exit__(self, *exc: object) -> None:
        """Put yolospan's frame code back as it was."""
        cls = _instrument.Instrumentation
        cls._open, cls._close = self._open, self._close  # type: ignore[method-assign]
        _script.Follower.step = self._step  # type: ignore[method-assign]
        _slot.CallSlot.call = self._call  # type: ignore[method-assign]


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


class CallThrough:
    """A call slot's owner that runs the call and nothing else (the ``slot only`` variant)."""

    def _run(
        self, target: _slot.CallSlot, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return target.call(module, args, kwargs)


class Copy:
    """One deep copy of the model, its generic twin (yolospan's models only), and its current
    variant's handle."""

    def __init__(self, base: nn.Module, *, generic: bool = True) -> None:
        self.model = copy.deepcopy(base)
        self.generic = GenericLoop(self.model) if generic else None
        self.handle: yolospan.Instrumentation | None = None
        self.slot: _slot.CallSlot | None = None

    def switch(self, variant: str, provider: TracerProvider) -> nn.Module:
        """Put this copy in ``variant``'s state; returns the module to call."""
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        if self.slot is not None:
            _slot.unlink(self.model, self.slot)
            self.slot = None
        if variant == "model-level":
            self.handle = yolospan.instrument(self.model, tracer_provider=provider)
        elif variant == "layers=True":
            self.handle = yolospan.instrument(self.model, layers=True, tracer_provider=provider)
        elif variant == "hook path":
            if self.generic is None:
                raise ValueError("this copy has no generic twin for the hook path")
            self.handle = yolospan.instrument(self.generic, layers=True, tracer_provider=provider)
            return self.generic
        elif variant == "removed":
            yolospan.instrument(self.model, layers=True, tracer_provider=provider).remove()
        elif variant == "slot only":
            self.slot = _slot.CallSlot(CallThrough(), self.model, "forward", {}, layer=False)
            self.model.__dict__["_compiled_call_impl"] = self.slot
        return self.model


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
    """Wait for spans still waiting for their device time (on CUDA), so none is left between runs."""
    flush = getattr(tracing, "flush_device_time", None)
    if flush is not None:
        flush()


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def run_square(
    copies: Sequence[Copy],
    x: torch.Tensor,
    rounds: int,
    dtype: torch.dtype | None,
    clock: HookClock,
    deadline: float = float("inf"),
    variants: Sequence[str] = VARIANTS,
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """One Latin square over ``copies`` (one per variant, ``variants[0]`` the untraced one): wall and
    device seconds per variant in round order (index r is round r for every variant), and the spans
    made. Past ``deadline`` (``time.monotonic()``), stops after the next whole square."""
    if len(copies) != len(variants):
        raise ValueError(f"a Latin square needs one copy per variant: {len(copies)} for {len(variants)}")
    provider, exporter = dropping_provider()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    device: dict[str, list[float]] = {name: [] for name in variants}
    timer = Timer(x.device)
    with torch.inference_mode(), autocast(x.device, dtype):
        for each in copies:
            each.model(x)  # warm the allocator and kernels at this shape and precision
        for r in range(rounds):
            if r and r % len(variants) == 0 and time.monotonic() > deadline:
                break
            for c, each in enumerate(copies):
                variant = variants[(c + r) % len(variants)]
                model = each.switch(variant, provider)
                clock.variant = ""
                for _ in range(
                    WARMUP_FORWARDS
                ):  # untimed: the caches of a long job, rebuilt after the switch
                    model(x)
                clock.variant = variant
                seconds, on_device = timer(model, x)
                clock.variant = ""
                wall[variant].append(seconds)
                if on_device is not None:
                    device[variant].append(on_device)
        for each in copies:
            each.switch(variants[0], provider)
    flush_device_time()
    provider.shutdown()
    return wall, device, exporter.count


def layer_floors(model: nn.Module, x: torch.Tensor, reps: int = 300) -> tuple[float, float, int]:
    """Seconds per forward for (the fast path, the tracer API) making one forward's layer spans,
    back to back in a tight loop, and how many spans that is."""
    recorder = InMemorySpanExporter()
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(recorder))
    with yolospan.instrument(model, layers=True, tracer_provider=recording) as handle:
        model(x)
        recorder.clear()
        model(x)  # the steady state: attributes come from the learned signature
        flush_device_time()
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


def forward_span_ways(tracer: Any) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
    """For each way of making one model-level forward span: (the work before the forward, which
    returns what the work after it needs; the work after the forward)."""
    ids = tracer.id_generator
    random = TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else 0
    flags = TraceFlags(TraceFlags.SAMPLED | random)
    on_end = tracer.span_processor.on_end

    def api_open() -> Any:
        span = tracer.start_span("forward", start_time=time.time_ns())
        return span, otel_context.attach(trace.set_span_in_context(span))

    def direct_open() -> Any:
        fast = _fast_spans.starter(tracer)
        span = None if fast is None else fast.start("forward", otel_context.get_current(), time.time_ns())
        if span is None:
            raise RuntimeError("yolospan's SDK shortcut does not apply to this tracer")
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end(opened: Any) -> None:
        span, token = opened
        otel_context.detach(token)
        span.end()

    def deferred_open() -> Any:
        context = SpanContext(
            ids.generate_trace_id(), ids.generate_span_id(), is_remote=False, trace_flags=flags
        )
        start_ns = time.time_ns()
        return context, start_ns, otel_context.attach(trace.set_span_in_context(NonRecordingSpan(context)))

    def deferred_end(opened: Any) -> None:
        context, start_ns, token = opened
        otel_context.detach(token)
        on_end(
            ReadableSpan(
                name="forward",
                context=context,
                parent=None,
                resource=tracer.resource,
                attributes=None,
                events=(),
                links=(),
                instrumentation_info=tracer.instrumentation_info,
                instrumentation_scope=tracer._instrumentation_scope,
                start_time=start_ns,
                end_time=time.time_ns(),
            )
        )

    return {"api": (api_open, end), "direct": (direct_open, end), "deferred": (deferred_open, deferred_end)}


def forward_floors(
    model: nn.Module, x: torch.Tensor, rounds: int, deadline: float = float("inf"), warmup: int = 2
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of one model-level forward span's work before and after real forwards of ``model``
    (untraced), per way of making it (`forward_span_ways`), in round order. The ways take turns
    (rotated each round); past ``deadline``, stops once 10 rounds are in."""
    provider, _ = dropping_provider()
    ways = forward_span_ways(get_tracer(provider))
    before: dict[str, list[float]] = {name: [] for name in FORWARD_FLOORS}
    after: dict[str, list[float]] = {name: [] for name in FORWARD_FLOORS}
    cuda = x.device.type == "cuda"
    for r in range(-warmup, rounds):
        if r >= 10 and time.monotonic() > deadline:
            break
        for i in range(len(FORWARD_FLOORS)):
            name = FORWARD_FLOORS[(i + r) % len(FORWARD_FLOORS)]
            open_span, close_span = ways[name]
            if cuda:
                torch.cuda.synchronize()  # outside the timed work, as between the tables' forwards
            start = time.perf_counter()
            opened = open_span()
            opened_at = time.perf_counter()
            model(x)
            returned = time.perf_counter()
            close_span(opened)
            closed = time.perf_counter()
            if r >= 0:
                before[name].append(opened_at - start)
                after[name].append(closed - returned)
    provider.shutdown()
    return before, after


def paired(samples: dict[str, list[float]], name: str) -> tuple[float, float]:
    """Median of the paired ratios and of the paired differences (seconds) against untraced."""
    pairs = list(zip(samples[name], samples["untraced"], strict=True))
    return statistics.median(t / u for t, u in pairs), statistics.median(t - u for t, u in pairs)


def table(
    title: str, wall: dict[str, list[float]], device: dict[str, list[float]], in_yolospan: dict[str, float]
) -> None:
    """Prints one table (see the module's docstring for the columns), a row per variant of ``wall``;
    ``in_yolospan``: seconds in yolospan's frame code over all the timed forwards, per variant."""
    base_median = statistics.median(wall["untraced"])
    on_device = bool(device["untraced"])
    print(title)
    header = f"{'variant':<12} {'median ms':>10} {'paired ratio':>13} {'paired diff ms':>15}"
    header += f" {'in yolospan ms':>15} {'1 + yolospan/median':>20}"
    if on_device:
        header += f" {'device ms':>10} {'ratio(device)':>14}"
    print(header)
    for name in wall:
        ratio, diff = paired(wall, name)
        spent = in_yolospan.get(name, 0.0) / len(wall[name])
        line = (
            f"{name:<12} {statistics.median(wall[name]) * 1e3:>10.2f} {ratio:>13.4f} {diff * 1e3:>15.3f} "
            f"{spent * 1e3:>15.3f} {1 + spent / base_median:>20.4f}"
        )
        if on_device:
            dev = statistics.median(device[name])
            line += f" {dev * 1e3:>10.3f} {dev / statistics.median(device['untraced']):>14.4f}"
        print(line)


def differences(small: dict[str, list[float]], small_x: torch.Tensor, base_median: float, imgsz: int) -> None:
    """Prints the ``--diff-imgsz`` rows: each traced variant's median paired difference from untraced
    (ms) at ``small_x``'s size and 1 + that difference over ``base_median`` (seconds: the table's
    untraced median, at ``imgsz``)."""
    batch, _, height, width = small_x.shape
    print(
        f"at {batch}x3x{height}x{width}, {len(small['untraced'])} rounds: "
        f"median paired difference from untraced ({statistics.median(small['untraced']) * 1e3:.2f} ms), "
        f"and 1 + difference / untraced median at {imgsz} ({base_median * 1e3:.2f} ms)"
    )
    for name in small:
        if name != "untraced":
            _, diff = paired(small, name)
            print(f"{name:<12} {diff * 1e3:>10.3f} {1 + diff / base_median:>13.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=42, help="a multiple of 6 balances the square (42)")
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
    parser.add_argument("--diff-imgsz", type=int, default=0, help="also measure differences at this size")
    parser.add_argument(
        "--diff-rounds", type=int, default=0, help="rounds at --diff-imgsz (default 4x --rounds)"
    )
    parser.add_argument(
        "--floor-rounds", type=int, default=0, help="rounds of the model-level floors (default --rounds)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="stop adding rounds once a share of this many seconds is spent (95%% in total)",
    )
    args = parser.parse_args()
    if any(b < 1 for b in args.batch):
        parser.error("--batch: batch sizes must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    started = time.monotonic()
    budget = args.budget_s or float("inf")

    base = yolospan.build_model(args.model).eval().to(device)
    copies = [Copy(base) for _ in VARIANTS]
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
    combinations = [(batch, precision) for batch in args.batch for precision in args.precision]
    share = 0.85 * budget / len(combinations)
    main_share = 0.6 if args.diff_imgsz else 1.0
    first: tuple[torch.Tensor, str, float] | None = (
        None  # the first table's input, precision, untraced median
    )
    for index, (batch, precision) in enumerate(combinations):
        dtype = PRECISIONS[precision]
        x = torch.zeros(batch, 3, args.imgsz, args.imgsz, device=device)
        clock.seconds = {}
        deadline = started + share * (index + main_share)
        with clock:
            wall, on_device, spans = run_square(copies, x, args.rounds, dtype, clock, deadline)
        rounds = len(wall["untraced"])
        threads = f"{torch.get_num_threads()} threads"
        table(
            f"{args.model} {batch}x3x{args.imgsz}x{args.imgsz} eval forward, {precision}, "
            f"{rounds} rounds x {len(VARIANTS)} copies, torch {torch.__version__}, {threads}, "
            f"{device}, {spans} spans",
            wall,
            on_device,
            dict(clock.seconds),
        )
        base_median = statistics.median(wall["untraced"])
        if args.diff_imgsz:
            small_x = torch.zeros(batch, 3, args.diff_imgsz, args.diff_imgsz, device=device)
            small_rounds = args.diff_rounds or 4 * args.rounds
            small, _, _ = run_square(
                copies, small_x, small_rounds, dtype, clock, started + share * (index + 1)
            )
            differences(small, small_x, base_median, args.imgsz)
        if first is None:
            first = (x, precision, base_median)

    assert first is not None
    x, precision, untraced = first
    model = copies[0].model  # untraced again after its square
    with torch.inference_mode(), autocast(device, PRECISIONS[precision]):
        if (
            device.type == "cuda"
        ):  # the layer spans of a CUDA forward wait for its device times: learn on the CPU
            fast_floor, api_floor, floor_spans = layer_floors(copy.deepcopy(model).cpu(), x.cpu())
        else:
            fast_floor, api_floor, floor_spans = layer_floors(model, x)
        before, after = forward_floors(model, x, args.floor_rounds or args.rounds, started + 0.95 * budget)
    print(
        f"API floor: the tracer API making one forward's {floor_spans} layer spans back to back: "
        f"{api_floor * 1e3:.3f} ms, 1 + floor/median = {1 + api_floor / untraced:.4f}"
    )
    print(
        f"fast floor: the fast path making the same {floor_spans} layer spans back to back: "
        f"{fast_floor * 1e3:.3f} ms, 1 + floor/median = {1 + fast_floor / untraced:.4f}"
    )
    print(
        f"model-level floors: one forward span around {len(before['api'])} real forwards of "
        f"{x.shape[0]}x3x{args.imgsz}x{args.imgsz} ({precision}), work before + after the forward"
    )
    print(f"{'way':<12} {'median us':>10} {'before us':>10} {'after us':>10} {'1 + floor/median':>17}")
    for name in FORWARD_FLOORS:
        total = statistics.median(b + a for b, a in zip(before[name], after[name], strict=True))
        print(
            f"{name:<12} {total * 1e6:>10.1f} {statistics.median(before[name]) * 1e6:>10.1f} "
            f"{statistics.median(after[name]) * 1e6:>10.1f} {1 + total / untraced:>17.4f}"
        )


if __name__ == "__main__":
    main()
