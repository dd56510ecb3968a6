"""Native layer clock: a model that runs its own layer loop times its layers itself.

With ``layers=True``, a generic module's layers are traced through their call slots (see
`_instrument`): every layer call runs yolospan's code twice. A model that owns its forward loop
(a `ClockedModule`) needs none of it. While one of its forwards is recorded, `layer_clock` hands
the loop a `LayerClock`; the loop writes ``time.time_ns()`` before and after layer ``i`` into
``ticks[2 * i]`` and ``ticks[2 * i + 1]`` (one list, allocated once per thread, zeroed per
forward: no Python object per layer per forward), and nothing of yolospan runs on the layers.

The layers' attributes depend only on the model input's call signature (shapes, dtypes, device,
train/eval, autocast): the first forward of a signature is *described*: the loop calls each layer
through ``clock.call``, which runs the layer as a traced layer call of the hook path would (input
and output attributes, FLOPs counted during that forward by thop's counting hooks). What it
learned is kept with that signature, and later forwards of the signature only read the clock;
each layer's achieved FLOP/s is computed from its ticks, as a traced layer call computes it
from its own wall-clock times. The clock reads the wall clock only: a forward on a device with
its own clock (CUDA) is described every time, so its layers get device times as on the hook path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue
from torch import nn

from yolospan import attributes as A
from yolospan.tracing import _attrs, _fast_spans, _throughput
from yolospan.tracing._late_spans import ClockedSource

__all__ = ["ClockedModule", "LayerClock"]


@runtime_checkable
class ClockedModule(Protocol):
    """A model that names its layers (`LayeredModule`) and times them in its own forward loop.

    ``clocks_its_layers()`` returns True. Its forward calls ``layer_clock(self)`` once; when that
    returns a `LayerClock`, layer ``i`` of ``traced_layers()`` is run as::

        ticks[2 * i] = time.time_ns()
        x = clock.call(i, layer, x) if clock.describing else layer(x)
        ticks[2 * i + 1] = time.time_ns()

    with ``ticks = clock.ticks``, each layer once per forward, in index order.
    """

    def traced_layers(self) -> Sequence[Any]: ...

    def clocks_its_layers(self) -> bool: ...


class LayerClock:
    """The times of one forward's layers, as the model's loop notes them (see `ClockedModule`).

    ``ticks`` holds two ``time.time_ns()`` readings per layer, zero for a layer that has not run
    (or not returned). ``describing`` is True on the first forward of a call signature: the loop
    then runs each layer through ``call(index, layer, *args)``.
    """

    __slots__ = ("busy", "call", "describing", "ticks", "zeros")

    def __init__(self, layers: int, call: Callable[..., Any] | None = None) -> None:
        self.ticks: list[int] = [0] * (2 * layers)
        self.zeros: list[int] = [0] * (2 * layers)
        self.describing = call is not None
        self.call: Callable[..., Any] = call if call is not None else _call
        self.busy = False


def _call(index: int, layer: nn.Module, *args: Any) -> Any:
    return layer(*args)


class _Learned:
    """One layer's span as every forward of a call signature gives it (after the first), less the
    rates measured per forward (`rates`)."""

    __slots__ = ("call_attrs", "flops", "for_error", "key", "name", "outputs", "peak", "source")

    def __init__(self, name: str, call_attrs: Mapping[str, AttributeValue], outputs: dict[str, Any]) -> None:
        self.name = name
        self.call_attrs = call_attrs  # the layer's per-signature input attributes (shared, read-only)
        self.outputs = outputs  # output attributes and FLOPs, as a cached forward gives them
        self.key: tuple[Any, ...] | None = None  # (emitter, extra, phase) that ``source`` was made for
        self.source: ClockedSource | None = None
        self.for_error: Any = None
        described = {**call_attrs, **outputs}
        self.flops = _throughput.span_flops(described)
        self.peak = None if self.flops is None else _throughput.span_peak(described)

    def rates(self, start_ns: int, end_ns: int) -> dict[str, AttributeValue]:
        """The achieved FLOP/s of one forward's call of the layer, as a traced layer call measures it."""
        if self.flops is None:
            return {}
        return _throughput.rate_attributes(self.flops, (end_ns - start_ns) / 1e9, self.peak)

    def renew(
        self, fast: _fast_spans.Emitter, extra: Mapping[str, AttributeValue], phase: str | None
    ) -> None:
        """Forget the validated attributes if they were made for another emitter, span attributes
        or phase (equal span attributes entered again, e.g. per step, keep them)."""
        key = self.key
        if key is None or key[0] is not fast or key[2] != phase or (key[1] is not extra and key[1] != extra):
            self.key = (fast, extra, phase)
            self.source = self.for_error = None

    def clocked_source(
        self, fast: _fast_spans.Emitter, extra: Mapping[str, AttributeValue], phase: str | None
    ) -> ClockedSource:
        """The layer's validated attributes under ``fast``, ``extra`` and ``phase``, made once."""
        self.renew(fast, extra, phase)
        source = self.source
        if source is None:
            source = self.source = ClockedSource(fast, self, extra, phase)
        return source

    def reshaped(
        self, extra: Mapping[str, AttributeValue], phase: str | None, outputs: Mapping[str, AttributeValue]
    ) -> dict[str, Any]:
        """The attributes of a call that gave other outputs (``outputs``: their attributes) than
        the learned call: e.g. a layer whose output's size depends on the data."""
        attrs = self.attributes(extra, phase, ok=False)
        attrs.update(outputs)
        attrs.update({key: value for key, value in self.outputs.items() if key not in _attrs.OUTPUT_KEYS})
        return attrs

    def attributes(
        self, extra: Mapping[str, AttributeValue], phase: str | None, *, ok: bool
    ) -> dict[str, Any]:
        attrs: dict[str, Any] = {**extra, **self.call_attrs} if extra else dict(self.call_attrs)
        if phase is not None:
            attrs[A.PHASE] = phase
        if ok:
            attrs.update(self.outputs)
        return attrs


def start(own: LayerClock | None, layers: int, learned: Any, describe: Callable[..., Any]) -> LayerClock:
    """The clock for one recorded forward: a describing one until the signature is learned."""
    if learned is None:
        return LayerClock(layers, describe)
    if own is None or own.busy or own.describing or len(own.ticks) != 2 * layers:
        own = LayerClock(layers)
    own.ticks[:] = own.zeros
    own.busy = True
    return own


def learn(
    frames: Sequence[Any], index_of: Mapping[int, int], extra: Mapping[str, Any], phase: str | None
) -> tuple[_Learned, ...] | None:
    """What a described forward's layer frames teach about its signature, or None if it cannot be
    reused (a layer raised or was skipped, ran twice, or nested in another)."""
    learned: list[_Learned | None] = [None] * len(index_of)
    for frame in frames:
        index = index_of.get(id(frame.target))
        if index is None or learned[index] is not None:
            return None
        layer = learned_layer(frame, extra, phase)
        if layer is None:
            return None
        learned[index] = layer
    if any(item is None for item in learned):
        return None
    return tuple(learned)  # type: ignore[arg-type]


def learned_layer(frame: Any, extra: Mapping[str, Any], phase: str | None) -> _Learned | None:
    """What a described layer call gives every later call of its signature, or None where it cannot
    say (it raised, was not described, or ran inside another layer)."""
    if frame.error is not None or frame.call is None or frame.parent is not frame.root:
        return None
    call_attrs = frame.call.attrs
    before = {**extra, **call_attrs}
    if phase is not None:
        before[A.PHASE] = phase
    # (A frame's rates are in ``frame.measured``: a learned signature keeps what every forward shares.)
    outputs = {key: value for key, value in frame.attrs.items() if key not in before}
    if outputs.get(A.FLOPS_METHOD) == "thop":
        outputs[A.FLOPS_METHOD] = "thop.cached"  # what every later forward of the signature says
    return _Learned(frame.name, call_attrs, outputs)


def prepare(
    tracer: trace.Tracer,
    root_span: trace.Span,
    learned: Sequence[_Learned],
    extra: Mapping[str, AttributeValue],
    phase: str | None,
) -> None:
    """Validate a newly learned signature's layer attributes now, in the forward that described it
    (a slow one anyway), rather than in the first forward that only reads the clock."""
    fast = _fast_spans.emitter(tracer, root_span)
    if fast is None:
        return
    for layer in learned:
        layer.clocked_source(fast, extra, phase)


def emit(
    tracer: trace.Tracer,
    root_span: trace.Span,
    learned: Sequence[_Learned],
    ticks: list[int],
    extra: Mapping[str, AttributeValue],
    phase: str | None,
    error: BaseException | None,
    ended_ns: int = 0,
    errors: Mapping[int, BaseException] | None = None,
) -> None:
    """One forward's layer spans from the clock: those that started, in order, children of ``root_span``.

    ``ended_ns`` is when the forward ended, which also ends the layer that raised (if any) and
    never returned; ``errors`` names the layers that raised and returned a time (by index)."""
    fast = _fast_spans.emitter(tracer, root_span)
    parent = root_span.get_span_context()
    context = None
    now = 0
    for index, layer in enumerate(learned):
        start_ns = ticks[2 * index]
        if not start_ns:
            continue
        end_ns = ticks[2 * index + 1]
        failed = None
        if not end_ns:  # the layer that raised (the forward's error) and never returned
            end_ns = now = now or ended_ns or time.time_ns()
            failed = error
        elif errors and index in errors:
            failed = errors[index]
        if fast is not None:
            if failed is None:
                fast.emit_late(layer.clocked_source(fast, extra, phase), layer.name, parent, start_ns, end_ns)
                continue
            layer.renew(fast, extra, phase)
            bounded = layer.for_error
            if bounded is None:
                bounded = layer.for_error = fast.attributes(layer.attributes(extra, phase, ok=False))
            fast.emit(layer.name, parent, bounded, start_ns, end_ns, failed)
            continue
        if context is None:
            context = trace.set_span_in_context(root_span)
        attributes = layer.attributes(extra, phase, ok=failed is None)
        if failed is None:
            attributes.update(layer.rates(start_ns, end_ns))
        span = tracer.start_span(layer.name, context=context, attributes=attributes, start_time=start_ns)
        if failed is not None:
            span.record_exception(failed, timestamp=end_ns)
            span.set_status(Status(StatusCode.ERROR, f"{type(failed).__name__}: {failed}"))
        span.end(end_time=end_ns)
