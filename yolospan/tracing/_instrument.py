"""Module calls → spans: every forward of an instrumented module becomes a ``forward`` span.

yolospan does not use torch's forward hooks for this. It sets the module's
``_compiled_call_impl``, the per-instance slot through which ``nn.Module.__call__`` runs a
module compiled in place (`CallSlot`): the call runs inside yolospan's own ``try`` block, so
whatever the forward raises, ``KeyboardInterrupt`` included, ends the span with ERROR and the
exception, restores the OpenTelemetry context and passes through untouched; a forward that
returns is never marked ERROR, whatever exception the caller may be handling. torch leaves that
slot out of pickles and deep copies, so a copy of an instrumented module is a plain module, and
TorchScript ignores it. While torch compiles, scripts or traces (`stepping_aside`) yolospan
only calls through: no span, no attribute, no FLOPs inside a graph.

Attributes are computed only for recording spans, once per call signature (see `_Call`); FLOPs
are counted by thop's rules during the first forward of each signature (see `_flops`), by
counting hooks that only count calls made on the thread that counts.

Layer spans inside a recorded forward are deferred: a layer's call only notes the clock and the
call's attributes, and the forward turns them into spans when it ends, back to back, with their
real start and end times. Creating 25 spans in one tight loop costs a fraction of creating
them between convolutions that have evicted the tracer's code and data from the CPU caches.
What this gives up: a span started inside a layer's own forward (a phase, another
instrumentation) is parented to the forward span rather than to the layer's. With the SDK's own
provider the layer spans skip the tracer API (`_fast_spans`), and so does the forward span, which
reaches the processors as one finished span where none of them acts at a span's start
(`_pending`); once its signature's FLOPs are cached and its outputs are the ones the signature
learned, that span's attributes are made when read (`_steady.SteadySpan`). What the current
context gives (tracer, phase, span attributes) is read again only when the context object
changed (`_steady.ContextReading`).
A model that runs its own layer loop (`ClockedModule`, e.g. yolospan's YOLO models) times its
layers itself and its layers' slots stay untouched (`_clock`); any other module's later forwards
of a signature follow the layer calls its first forward made (`_script`).

Every call that carries FLOPs also gets its achieved FLOP/s (`_timing`). On the CPU that comes
from the recorded wall-clock times when the call ends. A recorded forward on CUDA instead puts
device-time marks (CUDA events) around itself and each layer, and is handed to a worker when
it ends (`_defer`): once the GPU has passed the marks the worker sets the device times and
rates, makes the layer spans and ends every span with its recorded wall-clock end (`_finish`).
The traced thread never waits for the GPU; readers call ``flush_device_time`` first.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, runtime_checkable

import torch
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue
from torch import nn
from torch.utils.hooks import RemovableHandle

from yolospan import attributes as A
from yolospan.tracing import _attrs, _clock, _fast_spans, _flops, _script, _steady, _timing, _torch_flops
from yolospan.tracing._context import snapshot
from yolospan.tracing._slot import (
    CallSlot,
    let_torchscript_skip_the_slot,
    stepping_aside,
    unlink,
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layer:
    """One layer of a model as its spans describe it."""

    index: int
    module: nn.Module
    type: str
    sources: tuple[int, ...] = ()


@runtime_checkable
class LayeredModule(Protocol):
    """A model that names its own layers (YOLO's ``i``, type and ``from``) for ``layers=True``."""

    def traced_layers(self) -> Sequence[Layer]: ...


def layers_of(module: nn.Module) -> list[Layer]:
    """The model's own layer list, or its direct children for any other module."""
    if isinstance(module, LayeredModule):
        return list(module.traced_layers())
    return [Layer(i, child, type(child).__name__) for i, child in enumerate(module.children())]


_NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})
_NO_MEASURES: _attrs.Attributes = {}  # shared and never written: a frame assigns its own dict


class _Frame:
    """One module call being traced.

    An eager frame owns a live span (``span``, made current through ``token``); a deferred layer
    frame has ``root``, the eager frame whose ``pending`` list receives it when it ends.
    ``counting`` while its FLOPs are being tallied by thop hooks.
    """

    __slots__ = (
        "attrs",
        "call",
        "clock",
        "counters",
        "counting",
        "end_mark",
        "end_ns",
        "error",
        "extra",
        "flops",
        "follower",
        "gave",
        "key",
        "layer_clock",
        "learns",
        "measured",
        "module",
        "name",
        "parent",
        "pending",
        "phase",
        "root",
        "single",
        "span",
        "start_mark",
        "start_ns",
        "target",
        "token",
        "tracer",
    )

    def __init__(self, module: nn.Module, target: CallSlot) -> None:
        self.module = module
        self.target = target
        self.name = target.name
        self.span: trace.Span | None = None
        self.token: object = None
        self.tracer: trace.Tracer | None = None  # an eager frame's: the provider resolved when it started
        self.root: _Frame | None = None
        self.parent: _Frame | None = None
        self.pending: list[_Frame] | None = None
        self.start_ns = 0
        self.end_ns = 0
        self.attrs: _attrs.Attributes = {}
        self.measured: _attrs.Attributes = _NO_MEASURES  # this call's own numbers (rates, device time)
        self.call: _Call | None = None
        self.counting = False
        self.flops = 0
        self.counters: list[RemovableHandle] = []
        self.error: BaseException | None = None
        self.extra: Mapping[str, AttributeValue] = _NO_ATTRIBUTES
        self.phase: str | None = None
        self.clock: Any = None  # a recorded forward on a device with a clock (CUDA): see _timing
        self.start_mark: Any = None
        self.end_mark: Any = None
        self.layer_clock: _clock.LayerClock | None = None  # a ClockedModule's forward
        self.follower: _script.Follower | None = None  # a forward following its signature's script
        self.learns = False  # a forward whose layer calls may become its signature's script
        # A layer call in such a forward, for the script to check later calls against:
        self.key: tuple[Any, ...] | None = None  # its call signature
        self.single = False  # one positional tensor, no other argument
        self.gave: _attrs.OutputSignature | None = None  # what it returned


_UNKNOWN: Any = object()

_MAX_SIGNATURES = 256
"""Per module; past this many distinct call signatures the cache starts over."""


class _Call:
    """What one call signature of a module always gives: its input attributes and, once counted, FLOPs."""

    __slots__ = (
        "attrs",
        "clock",
        "flops",
        "layers",
        "misses",
        "peak",
        "script",
        "steady",
    )

    def __init__(self, attrs: _attrs.Attributes) -> None:
        self.attrs = attrs
        self.flops: int | None = None
        self.peak: Any = _UNKNOWN  # the device's peak FLOP/s for this signature (`_timing.wall_rates`)
        self.clock: Any = _UNKNOWN  # the device's clock (`_timing.clock_for`): the same per signature
        self.layers: Any = None  # a clocked model's layer spans for this signature (`_clock.learn`)
        self.script: _script.Script | None = None  # the hook path's layer calls (`_script.learn`)
        self.misses = 0  # forwards that could not learn or follow ``script``
        self.steady: _steady.SteadySpan | None = None  # its forward span, once FLOPs are cached


class _Local(threading.local):
    """An instrumentation's per-thread state."""

    stack: list[_Frame | None] | None = None
    seen: _steady.ContextReading | None = None  # what the context gave the thread's last traced call
    layer_clock: _clock.LayerClock | None = None  # reused by the thread's clocked forwards
    follower: _script.Follower | None = None  # the recorded forward following its script, if any


_registry: weakref.WeakKeyDictionary[nn.Module, weakref.ref[Instrumentation]] = weakref.WeakKeyDictionary()
"""module → its instrumentation, both held weakly: the module's own slot keeps its
instrumentation alive, and nothing global keeps the module alive."""


class Instrumentation:
    """Handle returned by `instrument`; `remove` (or leaving a ``with`` block) takes it off again."""

    def __init__(
        self,
        module: nn.Module,
        *,
        layers: bool = False,
        tracer_provider: trace.TracerProvider | None = None,
        flops: Sequence[str] | None = None,
    ) -> None:
        self.module = module
        self.layers = layers
        self._count_torch = _torch_flops.wanted(flops)  # also FlopCounterMode's count (issue 13)
        self._provider = tracer_provider
        self._local = _Local()
        self._targets: list[CallSlot] = []
        # A model that times its own layers (`ClockedModule`): its layers' slots stay untouched.
        self._clocked: list[CallSlot] | None = [] if layers and _times_its_layers(module) else None
        self._clocked_index: dict[int, int] = {}
        self._scripts = layers and self._clocked is None  # the hook path learns its layer calls
        let_torchscript_skip_the_slot()
        self._attach(module, A.SPAN_FORWARD, {}, layer=False)
        if layers:
            for layer in layers_of(module):
                static: _attrs.Attributes = {
                    A.LAYER_INDEX: layer.index,
                    A.LAYER_TYPE: layer.type,
                    A.LAYER_PARAMS: sum(p.numel() for p in layer.module.parameters()),
                }
                if layer.sources:
                    static[A.LAYER_FROM] = list(layer.sources)
                self._attach(layer.module, layer.type, static, layer=True)
        _registry[module] = weakref.ref(self)

    def _describe_layer(self, index: int, layer: nn.Module, *args: Any) -> Any:
        """A clocked model's layer call on the first forward of a signature: traced as a hook-path layer."""
        assert self._clocked is not None
        return self._run(self._clocked[index], layer, args, {})

    @property
    def active(self) -> bool:
        return bool(self._targets)

    def remove(self) -> None:
        """Take yolospan off; the module behaves as if it was never instrumented."""
        for target in self._targets:
            module = target.module()
            if module is not None:
                unlink(module, target)
            target.calls = {}
        self._targets.clear()
        if _registered(self.module) is self:
            del _registry[self.module]

    def invalidate_flops(self) -> None:
        """Forget cached FLOPs, after the module's structure changed (e.g. Conv+BN fusing)."""
        for target in self._targets:
            target.calls = {}

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # --- calls --------------------------------------------------------------------------------

    def _attach(self, module: nn.Module, name: str, static: _attrs.Attributes, *, layer: bool) -> None:
        if self._clocked is not None and layer:  # never in the slot: `_describe_layer` calls it
            target = CallSlot(self, module, name, static, layer=True)
            self._clocked_index[id(target)] = len(self._clocked)
            self._clocked.append(target)
            self._targets.append(target)
            return
        if any(target.module() is module for target in self._targets):
            return  # a module listed twice (shared by two layers): traced once
        target = CallSlot(self, module, name, static, layer=layer)
        module.__dict__["_compiled_call_impl"] = target
        self._targets.append(target)

    def _stack(self) -> list[_Frame | None]:
        stack = self._local.stack
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _run(self, target: CallSlot, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One traced call: open its frame, run it, close the frame however the call ended."""
        follower = self._local.follower
        if follower is not None and target.layer:  # a layer call the forward's script may foresee
            output = follower.step(target, module, args, kwargs)
            if output is not _script.DEVIATED:
                return output
            self._local.follower = None  # described from here on
        stack = self._stack()
        depth = len(stack)
        try:
            self._open(target, module, args, kwargs)
            output = target.call(module, args, kwargs)
        except BaseException as error:  # KeyboardInterrupt too: torch's hooks would miss it
            while len(stack) > depth:
                self._close(stack, None, error)
            raise
        if len(stack) > depth:
            self._close(stack, output, None)
        return output

    def _open(
        self, target: CallSlot, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        stack = self._stack()
        if target.layer and stack:
            top = stack[-1]
            root = None if top is None else (top.root or top)
            if root is None or root.pending is None:
                stack.append(None)  # inside a forward that is not recorded: nothing to do
                return
            frame = _Frame(module, target)
            frame.root, frame.parent, frame.start_ns = root, top, time.time_ns()
            stack.append(frame)
            self._describe(frame, args, kwargs, stack)
            if root.clock is not None:
                frame.start_mark = _timing.mark(root.clock)
            return
        try:
            context = otel_context.get_current()
            seen = self._local.seen
            if seen is None or not seen.gives(context, self._provider):
                seen = self._local.seen = _steady.ContextReading(snapshot(self._provider), self._provider)
            start_ns = time.time_ns()
            fast = seen.fast  # the SDK's own tracer: skip its API
            span = None
            if fast is not None and fast.enabled():
                span = fast.start(target.name, context, start_ns, seen.plan)
            if span is None:
                span = seen.tracer.start_span(target.name, context=context, start_time=start_ns)
            frame = _Frame(module, target)
            frame.start_ns, frame.span, frame.tracer = start_ns, span, seen.tracer
            frame.extra, frame.phase = seen.attributes, seen.phase
            frame.token = otel_context.attach(trace.set_span_in_context(span, context))
        except Exception:
            _log.warning("yolospan: could not start a span for %s", target.name, exc_info=True)
            stack.append(None)  # keeps the stack balanced
            return
        stack.append(frame)
        if span.is_recording():
            frame.pending = []
            self._describe(frame, args, kwargs, stack)
            call = frame.call
            if call is None:
                clock = _timing.clock_for(frame.attrs)
            else:
                clock = call.clock
                if clock is _UNKNOWN:
                    clock = call.clock = _timing.clock_for(frame.attrs)
            if clock is not None:  # on CUDA: device time, read later (see _defer)
                frame.clock, frame.start_mark = clock, _timing.mark(clock)
            elif self._scripts and call is not None:
                if call.script is not None:
                    frame.follower = call.script.follower()
                else:
                    frame.learns = call.misses < _script.MAX_MISSES
            if self._scripts:
                self._local.follower = frame.follower  # (a nested forward's layers are its own)
            if self._clocked is not None and frame.call is not None and target.layer is False:
                own = self._local.layer_clock
                # On a device with its own clock (CUDA) the layers' device times need marks around
                # each layer: every forward is described (the hook path's layer frames, `_defer`).
                learned = frame.call.layers if frame.clock is None else None
                frame.layer_clock = self._local.layer_clock = _clock.start(
                    own, len(self._clocked), learned, self._describe_layer
                )

    def _describe(
        self, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any], stack: list[_Frame | None]
    ) -> None:
        try:
            self._describe_call(frame, args, kwargs, stack)
        except Exception:
            _log.warning("yolospan: could not describe %s", frame.name, exc_info=True)

    def _describe_call(
        self, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any], stack: list[_Frame | None]
    ) -> None:
        """Input attributes and FLOPs are computed once per call signature, then reused."""
        module = frame.module
        target = frame.target
        tensors = _attrs.tensors_in(args, kwargs)
        key = _attrs.signature(tensors, module.training)
        calls = target.calls
        known = calls.get(key)
        if known is None:
            if len(calls) >= _MAX_SIGNATURES:  # e.g. free-size inference: stay bounded, recount
                calls.clear()
            described = _attrs.input_attributes(tensors, module.training)
            known = calls[key] = _Call(described | target.static)
        root = frame.root
        if root is None:  # read from the context when the frame opened
            extra, phase = frame.extra, frame.phase
        else:  # a layer runs in its forward's context: no need to read the context again
            extra, phase = root.extra, root.phase
            if root.learns:
                frame.key = key
                frame.single = not kwargs and len(args) == 1 and type(args[0]) is torch.Tensor
        attrs = {**extra, **known.attrs} if extra else dict(known.attrs)
        if phase is not None:
            attrs[A.PHASE] = phase
        frame.attrs = attrs
        frame.call = known
        if known.flops is not None or not target.counts:
            frame.flops = known.flops or 0
            return
        frame.counting = True
        if self._count_torch:
            _torch_flops.start(frame)
        if not any(f is not None and f.counting for f in stack[:-1]):
            # The enclosing frame already hooks this subtree when it is counting too.
            frame.counters = _flops.attach_counters(module, self._add_flops, threading.get_ident())

    def _add_flops(self, flops: int) -> None:
        for frame in self._stack():
            if frame is not None and frame.counting:
                frame.flops += flops

    def _close(self, stack: list[_Frame | None], output: Any, error: BaseException | None) -> None:
        frame = stack.pop()
        if frame is None:
            return
        if frame.root is not None:  # a deferred layer: its span is made when the forward ends
            if frame.root.clock is not None:
                frame.end_mark = _timing.mark(frame.root.clock)
            frame.end_ns = time.time_ns()
            try:
                self._complete(frame, output, error)
                if frame.root.pending is not None:
                    frame.root.pending.append(frame)
            except Exception:
                _log.warning("yolospan: could not finish span %s", frame.name, exc_info=True)
            return
        span = frame.span
        assert span is not None
        deferred = ended = False
        if self._scripts:
            self._local.follower = None
        try:
            if span.is_recording():
                if frame.clock is not None:
                    frame.end_mark = _timing.mark(frame.clock)
                frame.end_ns = time.time_ns()
                late = None
                steady = None if frame.call is None else frame.call.steady
                if steady is not None and error is None and frame.clock is None and not frame.counting:
                    late = steady.source(frame, span, output)  # the CPU, a learned signature
                if late is None:
                    self._complete(frame, output, error)
                if frame.layer_clock is not None:
                    self._clocked_layers(frame)
                elif self._scripts and frame.clock is None:
                    self._scripted_layers(frame)
                if frame.clock is not None:
                    deferred = self._defer(frame)
                else:
                    if late is None:
                        _apply(span, frame)
                    if frame.pending:
                        self._emit_layers(frame, frame.tracer)  # type: ignore[arg-type]
                    if late is not None:
                        ended = span.end_late(late, frame.end_ns)  # type: ignore[attr-defined]
                        if not ended:  # changed from another thread since `source` looked
                            self._complete(frame, output, error)
                            _apply(span, frame)
        except Exception:
            _log.warning("yolospan: could not finish span %s", frame.name, exc_info=True)
        finally:
            try:
                otel_context.detach(frame.token)  # type: ignore[arg-type]
            finally:
                if not deferred and not ended:
                    span.end(end_time=frame.end_ns or None)

    def _defer(self, root: _Frame) -> bool:
        """Hand a device-timed forward to the resolver's worker, which ends its spans (`_finish`)."""
        tracer = root.tracer
        assert tracer is not None
        frames = [root, *(root.pending or ())]
        pairs = [(frame.start_mark, frame.end_mark) for frame in frames]
        _timing.resolver().submit(root.clock, pairs, lambda times: self._finish(root, frames, times, tracer))
        return True

    def _finish(
        self, root: _Frame, frames: list[_Frame], times: list[float | None], tracer: trace.Tracer
    ) -> None:
        """On the resolver's worker: device times and achieved FLOP/s on every span, then end them."""
        span = root.span
        assert span is not None
        try:
            for frame, elapsed_ms in zip(frames, times, strict=True):
                if frame.error is None:
                    frame.measured = _timing.device_attributes(frame.attrs, elapsed_ms)
                elif elapsed_ms is not None:
                    frame.measured = {A.DEVICE_TIME_MS: elapsed_ms}
            _apply(span, root)
            if root.pending:
                self._emit_layers(root, tracer)
        finally:
            span.end(end_time=root.end_ns)

    def _complete(self, frame: _Frame, output: Any, error: BaseException | None) -> None:
        """Output attributes and FLOPs, once the call returned (or only the error, if it raised)."""
        for handle in frame.counters:
            handle.remove()
        frame.counters = []
        torch_flops = _torch_flops.stop(frame) if frame.counting else None
        if error is not None:
            frame.error = error
            return
        attrs = frame.attrs
        _attrs.add_output_attributes(attrs, output)
        if frame.root is not None and frame.root.learns:  # what a script checks later calls against
            frame.gave = _attrs.OutputSignature(output)
        if frame.counting:
            assert frame.call is not None
            frame.call.flops = frame.flops
            attrs[A.FLOPS_METHOD] = "thop"
            _torch_flops.record(torch_flops, attrs, frame.call.attrs)
        elif not frame.target.counts:
            return
        else:
            attrs[A.FLOPS_METHOD] = "thop.cached"
        attrs[A.FLOPS] = frame.flops
        if (frame.root or frame).clock is None:  # the CPU: the wall clock measures the work
            call = frame.call
            if call is None:  # not described (logged): nothing to keep the peak with
                peak = _timing.peak(attrs)
            else:
                if call.peak is _UNKNOWN:  # the same for every call of the signature
                    call.peak = _timing.peak(attrs)
                peak = call.peak
            frame.measured = _timing.wall_rates(frame.flops, frame.start_ns, frame.end_ns, peak)
            if frame.root is None and call is not None and call.steady is None:
                call.steady = _steady.SteadySpan.learn(frame, output)

    def _clocked_layers(self, root: _Frame) -> None:
        """A clocked model's forward: learn its signature's layers, or emit them from the clock."""
        clock, call = root.layer_clock, root.call
        assert clock is not None and call is not None and root.span is not None
        root.layer_clock = None
        clock.busy = False
        if clock.describing:  # its layer frames are in ``pending``, emitted as usual
            if root.error is None and call.layers is None:
                call.layers = _clock.learn(root.pending or (), self._clocked_index, root.extra, root.phase)
                if call.layers is not None and root.tracer is not None:
                    _clock.prepare(root.tracer, root.span, call.layers, root.extra, root.phase)
            return
        tracer = root.tracer
        assert tracer is not None
        _clock.emit(
            tracer, root.span, call.layers, clock.ticks, root.extra, root.phase, root.error, root.end_ns
        )

    def _scripted_layers(self, root: _Frame) -> None:
        """The hook path's forward on the CPU: learn its signature's script, or emit what it followed."""
        call, follower = root.call, root.follower
        if call is None or root.span is None or root.tracer is None:
            return
        if follower is None:  # described: learn from its layer frames, still in ``pending``
            learns = root.learns and call.script is None and call.misses < _script.MAX_MISSES
            if learns and root.error is None:
                call.script = _script.learn(root.pending or (), root.extra, root.phase)
                if call.script is None:
                    call.misses += 1
                else:
                    _clock.prepare(root.tracer, root.span, call.script.learned, root.extra, root.phase)
            return
        root.follower = None
        if follower.deviated:  # described from the deviation on; learn again next time
            call.script = None
            call.misses += 1
        ticks = follower.ticks
        for index, outputs in follower.odd:  # calls whose outputs were not the script's
            learned = follower.entries[index].learned
            odd = _Frame(root.module, follower.entries[index].target)
            odd.root = odd.parent = root
            odd.start_ns, odd.end_ns = ticks[2 * index], ticks[2 * index + 1]
            odd.attrs = learned.reshaped(root.extra, root.phase, outputs)
            odd.measured = learned.rates(odd.start_ns, odd.end_ns)
            if root.pending is not None:
                root.pending.append(odd)
            ticks[2 * index] = 0  # its span is made from its frame
        _clock.emit(
            root.tracer,
            root.span,
            follower.script.learned,
            ticks,
            root.extra,
            root.phase,
            root.error,
            root.end_ns,
            follower.failed,
        )

    def _emit_layers(self, root: _Frame, tracer: trace.Tracer) -> None:
        """The forward's deferred layer spans, parents before children, with their recorded times."""
        assert root.span is not None and root.pending is not None
        fast = _fast_spans.emitter(tracer, root.span)
        if fast is not None:
            _fast_spans.emit_frames(fast, root.span, root.pending)
            root.pending = []
            return
        made: dict[int, trace.Span] = {id(root): root.span}
        contexts: dict[int, otel_context.Context] = {}
        for frame in sorted(root.pending, key=_start_ns):
            parent_id = id(frame.parent)
            context = contexts.get(parent_id)
            if context is None:
                context = contexts[parent_id] = trace.set_span_in_context(made.get(parent_id, root.span))
            layer_span = tracer.start_span(
                frame.name,
                context=context,
                attributes={**frame.attrs, **frame.measured},
                start_time=frame.start_ns,
            )
            if frame.error is not None:
                _record_error(layer_span, frame.error, frame.end_ns)
            made[id(frame)] = layer_span
            layer_span.end(end_time=frame.end_ns)
        root.pending = []


def _times_its_layers(module: nn.Module) -> bool:
    return isinstance(module, _clock.ClockedModule) and module.clocks_its_layers() is True


def layer_clock(module: nn.Module) -> _clock.LayerClock | None:
    """For a `ClockedModule`'s forward: the clock to note its layers' times in, or None to run plainly.

    Not None only while yolospan records this forward of ``module`` with ``layers=True`` (a
    forward that is not traced, not sampled, or compiled runs its layers with nothing around them).
    """
    if stepping_aside():
        return None
    ref = _registry.get(module)
    instrumentation = None if ref is None else ref()
    if instrumentation is None or instrumentation._clocked is None:
        return None
    stack = instrumentation._local.stack
    if not stack:
        return None
    frame = stack[-1]
    if frame is None or frame.module is not module:
        return None
    return frame.layer_clock


def _registered(module: nn.Module) -> Instrumentation | None:
    ref = _registry.get(module)
    return None if ref is None else ref()


def _start_ns(frame: _Frame) -> int:
    return frame.start_ns


def _apply(span: trace.Span, frame: _Frame) -> None:
    """Set all attributes in one call: validated once per attribute set for the SDK's own spans."""
    if not _fast_spans.set_attributes(span, frame.attrs, frame.measured, (frame.name, id(frame.call))):
        span.set_attributes({**frame.attrs, **frame.measured})
    if frame.error is not None:
        _record_error(span, frame.error)


def _record_error(span: trace.Span, error: BaseException, timestamp: int | None = None) -> None:
    span.record_exception(error, timestamp=timestamp)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def instrument(
    module: nn.Module,
    *,
    layers: bool = False,
    tracer_provider: trace.TracerProvider | None = None,
    flops: Sequence[str] | None = None,
) -> Instrumentation:
    """Trace every forward of ``module`` (and, with ``layers=True``, of each layer) as a span.

    Without ``tracer_provider`` spans go to the provider set by `use_tracer_provider` in the
    current OpenTelemetry context, else to OpenTelemetry's global one; with neither configured
    the cost is next to nothing. The handle holds ``module`` weakly, and an instrumented module
    that is dropped is collected as usual.
    ``flops=("thop", "torch")`` also counts with PyTorch's FlopCounterMode (``yolospan.flops.torch``);
    None takes the methods of the enclosing `flop_methods` block (thop only by default).
    """
    existing = _registered(module)
    if existing is not None and existing.active:
        raise RuntimeError(
            f"{type(module).__name__} is already instrumented by yolospan; remove() that handle first"
        )
    return Instrumentation(module, layers=layers, tracer_provider=tracer_provider, flops=flops)


def instrumentation_of(module: nn.Module) -> Instrumentation | None:
    """The active instrumentation of ``module``, if any."""
    handle = _registered(module)
    return handle if handle is not None and handle.active else None


def invalidate_flops(module: nn.Module) -> None:
    """Tell yolospan that ``module``'s structure changed, so cached FLOPs are recounted."""
    handle = instrumentation_of(module)
    if handle is not None:
        handle.invalidate_flops()
