"""Module hooks → spans: every forward of an instrumented module becomes a ``forward`` span.

One pre-hook opens the span and makes it current, one ``always_call`` post-hook ends it, with
ERROR status when the forward raised. Attributes are computed only for recording spans, once
per call signature (see `_Call`); FLOPs are counted by thop's rules during the first forward of
each signature (see `_flops`).

Layer spans inside a recorded forward are deferred: the layer's hooks only note the clock and
the call's attributes, and the forward's post-hook turns them into spans, back to back, with
their real start and end times. Creating 25 spans in one tight loop costs a fraction of creating
them between convolutions that have evicted the tracer's code and data from the CPU caches.
What this gives up: a span started inside a layer's own forward (a phase, another
instrumentation) is parented to the forward span rather than to the layer's.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, runtime_checkable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue
from torch import nn
from torch.utils.hooks import RemovableHandle

from yolospan import attributes as A
from yolospan.tracing import _attrs, _flops
from yolospan.tracing._context import current_phase, current_span_attributes, get_tracer
from yolospan.tracing._hook import CopiedAsInert

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


class _Frame:
    """One module call being traced.

    An eager frame owns a live span (``span``, made current through ``token``); a deferred layer
    frame has ``root``, the eager frame whose ``pending`` list receives it when it ends.
    ``counting`` while its FLOPs are being tallied by thop hooks.
    """

    __slots__ = (
        "attrs",
        "call",
        "counters",
        "counting",
        "end_ns",
        "error",
        "extra",
        "flops",
        "module",
        "name",
        "parent",
        "pending",
        "phase",
        "root",
        "span",
        "start_ns",
        "token",
    )

    def __init__(self, module: nn.Module, name: str) -> None:
        self.module = module
        self.name = name
        self.span: trace.Span | None = None
        self.token: object = None
        self.root: _Frame | None = None
        self.parent: _Frame | None = None
        self.pending: list[_Frame] | None = None
        self.start_ns = 0
        self.end_ns = 0
        self.attrs: _attrs.Attributes = {}
        self.call: _Call | None = None
        self.counting = False
        self.flops = 0
        self.counters: list[RemovableHandle] = []
        self.error: BaseException | None = None
        self.extra: Mapping[str, AttributeValue] = _NO_ATTRIBUTES
        self.phase: str | None = None


_MAX_SIGNATURES = 256
"""Per module; past this many distinct call signatures the cache starts over."""


class _Call:
    """What one call signature of a module always gives: its input attributes and, once counted, FLOPs."""

    __slots__ = ("attrs", "flops")

    def __init__(self, attrs: _attrs.Attributes) -> None:
        self.attrs = attrs
        self.flops: int | None = None


_registry: weakref.WeakKeyDictionary[nn.Module, Instrumentation] = weakref.WeakKeyDictionary()


class Instrumentation:
    """Handle returned by `instrument`; `remove` (or leaving a ``with`` block) takes every hook off."""

    def __init__(
        self,
        module: nn.Module,
        *,
        layers: bool = False,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.module = module
        self.layers = layers
        self._provider = tracer_provider
        self._local = threading.local()
        self._calls: dict[nn.Module, dict[tuple[Any, ...], _Call]] = {}
        self._static: dict[nn.Module, _attrs.Attributes] = {}
        self._hooks: list[RemovableHandle] = []
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
        _registry[module] = self

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    def remove(self) -> None:
        """Take every hook off; the module behaves as if it was never instrumented."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._calls.clear()
        if _registry.get(self.module) is self:
            del _registry[self.module]

    def invalidate_flops(self) -> None:
        """Forget cached FLOPs, after the module's structure changed (e.g. Conv+BN fusing)."""
        self._calls.clear()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # --- hooks --------------------------------------------------------------------------------

    def _attach(self, module: nn.Module, name: str, static: _attrs.Attributes, *, layer: bool) -> None:
        self._static[module] = static
        self._hooks.append(module.register_forward_pre_hook(_OpenHook(self, module, name, layer)))
        self._hooks.append(module.register_forward_hook(_CloseHook(self, module), always_call=True))

    def _stack(self) -> list[_Frame | None]:
        stack: list[_Frame | None] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _open(self, module: nn.Module, name: str, args: tuple[Any, ...], layer: bool) -> None:
        stack = self._stack()
        if layer and stack:
            top = stack[-1]
            root = None if top is None else (top.root or top)
            if root is None or root.pending is None:
                stack.append(None)  # inside a forward that is not recorded: nothing to do
                return
            frame = _Frame(module, name)
            frame.root, frame.parent, frame.start_ns = root, top, time.time_ns()
            stack.append(frame)
            self._describe(frame, args, stack)
            return
        try:
            span = get_tracer(self._provider).start_span(name)
            frame = _Frame(module, name)
            frame.span, frame.token = span, otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            _log.warning("yolospan: could not start a span for %s", name, exc_info=True)
            stack.append(None)  # keeps the post-hook balanced
            return
        stack.append(frame)
        if span.is_recording():
            frame.pending = []
            self._describe(frame, args, stack)

    def _describe(self, frame: _Frame, args: tuple[Any, ...], stack: list[_Frame | None]) -> None:
        try:
            self._describe_call(frame, args, stack)
        except Exception:
            _log.warning("yolospan: could not describe %s", frame.name, exc_info=True)

    def _describe_call(self, frame: _Frame, args: tuple[Any, ...], stack: list[_Frame | None]) -> None:
        """Input attributes and FLOPs are computed once per call signature, then reused."""
        module = frame.module
        tensors = _attrs.tensors_in(args)
        key = _attrs.signature(tensors, module.training)
        calls = self._calls.get(module)
        if calls is None:
            calls = self._calls[module] = {}
        known = calls.get(key)
        if known is None:
            if len(calls) >= _MAX_SIGNATURES:  # e.g. free-size inference: stay bounded, recount
                calls.clear()
            described = _attrs.input_attributes(tensors, module.training)
            known = calls[key] = _Call(described | self._static[module])
        root = frame.root
        if root is None:
            frame.extra, frame.phase = current_span_attributes(), current_phase()
            extra, phase = frame.extra, frame.phase
        else:  # a layer runs in its forward's context: no need to read the context variables again
            extra, phase = root.extra, root.phase
        attrs = {**extra, **known.attrs} if extra else dict(known.attrs)
        if phase is not None:
            attrs[A.PHASE] = phase
        frame.attrs = attrs
        frame.call = known
        if known.flops is not None:
            frame.flops = known.flops
            return
        frame.counting = True
        if not any(f is not None and f.counting for f in stack[:-1]):
            # The enclosing frame already hooks this subtree when it is counting too.
            frame.counters = _flops.attach_counters(module, self._add_flops)

    def _add_flops(self, flops: int) -> None:
        for frame in self._stack():
            if frame is not None and frame.counting:
                frame.flops += flops

    def _close(self, output: Any) -> None:
        stack = self._stack()
        if not stack:
            return
        frame = stack.pop()
        if frame is None:
            return
        error = sys.exc_info()[1] if output is None else None
        if frame.root is not None:  # a deferred layer: its span is made when the forward ends
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
        try:
            if span.is_recording():
                self._complete(frame, output, error)
                _apply(span, frame)
                if frame.pending:
                    self._emit_layers(frame)
        except Exception:
            _log.warning("yolospan: could not finish span %s", frame.name, exc_info=True)
        finally:
            try:
                otel_context.detach(frame.token)  # type: ignore[arg-type]
            finally:
                span.end()

    def _complete(self, frame: _Frame, output: Any, error: BaseException | None) -> None:
        """Output attributes and FLOPs, once the call returned (or only the error, if it raised)."""
        for handle in frame.counters:
            handle.remove()
        frame.counters = []
        if error is not None:
            frame.error = error
            return
        attrs = frame.attrs
        _attrs.add_output_attributes(attrs, output)
        if frame.counting:
            assert frame.call is not None
            frame.call.flops = frame.flops
            attrs[A.FLOPS_METHOD] = "thop"
        else:
            attrs[A.FLOPS_METHOD] = "thop.cached"
        attrs[A.FLOPS] = frame.flops

    def _emit_layers(self, root: _Frame) -> None:
        """The forward's deferred layer spans, parents before children, with their recorded times."""
        assert root.span is not None and root.pending is not None
        tracer = get_tracer(self._provider)
        made: dict[int, trace.Span] = {id(root): root.span}
        contexts: dict[int, otel_context.Context] = {}
        for frame in sorted(root.pending, key=_start_ns):
            parent_id = id(frame.parent)
            context = contexts.get(parent_id)
            if context is None:
                context = contexts[parent_id] = trace.set_span_in_context(made.get(parent_id, root.span))
            layer_span = tracer.start_span(
                frame.name, context=context, attributes=frame.attrs, start_time=frame.start_ns
            )
            if frame.error is not None:
                _record_error(layer_span, frame.error, frame.end_ns)
            made[id(frame)] = layer_span
            layer_span.end(end_time=frame.end_ns)
        root.pending = []


class _OpenHook(CopiedAsInert):
    """The forward pre-hook: opens the call's frame. A copy of the module gets an inert no-op."""

    __slots__ = ("instrumentation", "layer", "module", "name")

    def __init__(self, instrumentation: Instrumentation, module: nn.Module, name: str, layer: bool) -> None:
        self.instrumentation = instrumentation
        self.module = module
        self.name = name
        self.layer = layer

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if module is self.module:  # a shallow copy shares the hook dicts: only the original is traced
            self.instrumentation._open(module, self.name, args, self.layer)


class _CloseHook(CopiedAsInert):
    """The ``always_call`` forward hook: closes the call's frame."""

    __slots__ = ("instrumentation", "module")

    def __init__(self, instrumentation: Instrumentation, module: nn.Module) -> None:
        self.instrumentation = instrumentation
        self.module = module

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if module is self.module:
            self.instrumentation._close(output)


def _start_ns(frame: _Frame) -> int:
    return frame.start_ns


def _apply(span: trace.Span, frame: _Frame) -> None:
    """Set all attributes in one call: the SDK validates per call, so this halves its cost."""
    span.set_attributes(frame.attrs)
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
) -> Instrumentation:
    """Trace every forward of ``module`` (and, with ``layers=True``, of each layer) as a span.

    Without ``tracer_provider`` spans go to the provider set by `use_tracer_provider`, else to
    OpenTelemetry's global one; with neither configured the hooks cost next to nothing.
    """
    existing = _registry.get(module)
    if existing is not None and existing.active:
        raise RuntimeError(
            f"{type(module).__name__} is already instrumented by yolospan; remove() that handle first"
        )
    return Instrumentation(module, layers=layers, tracer_provider=tracer_provider)


def instrumentation_of(module: nn.Module) -> Instrumentation | None:
    """The active instrumentation of ``module``, if any."""
    handle = _registry.get(module)
    return handle if handle is not None and handle.active else None


def invalidate_flops(module: nn.Module) -> None:
    """Tell yolospan that ``module``'s structure changed, so cached FLOPs are recounted."""
    handle = instrumentation_of(module)
    if handle is not None:
        handle.invalidate_flops()
