"""A live tree of the spans in the terminal: phases as they open, forwards and layers as they end.

The line formats are pure functions over span attributes (`describe_call`, `describe_result`,
`format_flops`, ...) so they can be tested without a provider, and so are the lines of the tree
(`span_line`, `group_line`), which `yolospan show` also draws finished spans with
(`yolospan.export.tree`); `ConsoleTreeProcessor` only decides when to print and how deep.

A span becomes a group (``┌ name`` ... ``└ name  summary``) once something is printed inside it;
a span with nothing visible inside is one line when it ends. Phase and other unit-of-work spans
open their group as soon as their first child starts. Forward and layer spans are printed when
they end, because that is when their outputs and FLOPs are known.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A

__all__ = [
    "ASCII",
    "UNICODE",
    "Charset",
    "ConsoleTreeProcessor",
    "charset_for",
    "describe_call",
    "describe_result",
    "format_duration",
    "format_flops",
    "format_rate",
    "format_shape",
    "format_value",
    "group_line",
    "is_call_span",
    "span_label",
    "span_line",
    "use_color",
]

_log = logging.getLogger(__name__)

Attributes = Mapping[str, AttributeValue]

MAX_SHAPES_SHOWN = 4
"""Output shapes listed per line; Detect's ``(pred, [p3, p4, p5])`` fits, longer outputs say ``+N``."""


@dataclass(frozen=True)
class Charset:
    """The characters the tree is drawn with."""

    guide: str
    open: str
    close: str
    arrow: str
    times: str


UNICODE = Charset(guide="│ ", open="┌ ", close="└ ", arrow=" → ", times="×")
ASCII = Charset(guide="| ", open="+ ", close="` ", arrow=" -> ", times="x")


def charset_for(stream: TextIO) -> Charset:
    """Box characters unless the stream's encoding cannot write them (a C locale, a legacy code page)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    sample = UNICODE.guide + UNICODE.open + UNICODE.close + UNICODE.arrow + UNICODE.times
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


# --- pure formatting ------------------------------------------------------------------------------


def format_flops(flops: int) -> str:
    """SI-scaled FLOPs with one decimal, as profilers print them: ``41563136`` → ``41.6 MFLOPs``."""
    if flops < 1000:
        return f"{flops} FLOPs"
    for prefix, scale in (("K", 1e3), ("M", 1e6), ("G", 1e9)):
        value = flops / scale
        if round(value, 1) < 1000:
            return f"{value:.1f} {prefix}FLOPs"
    return f"{flops / 1e12:.1f} TFLOPs"


def format_shape(shape: Sequence[int], charset: Charset = UNICODE) -> str:
    """``[1, 3, 640, 640]`` → ``1×3×640×640``; a 0-d tensor is ``scalar``."""
    if not shape:
        return "scalar"
    return charset.times.join(str(dim) for dim in shape)


def format_duration(nanoseconds: int) -> str:
    """Milliseconds, with two decimals below 1 ms so fast layers do not all read ``0.0 ms``."""
    millis = nanoseconds / 1e6
    return f"{millis:.2f} ms" if millis < 1 else f"{millis:.1f} ms"


def format_value(value: AttributeValue) -> str:
    """An attribute value as a person reads it: ``7,235,389``, ``[8, 16, 32]``, ``0.0004``, quoted text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return f'"{value}"' if (" " in value or not value) else value
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}={format_value(item)}" for key, item in value.items()) + "}"
    return "[" + ", ".join(format_value(item) for item in value) + "]"


def _plain(value: AttributeValue) -> str:
    """An integer without thousands separators (a size, an index); anything else as `format_value`."""
    return str(value) if type(value) is int else format_value(value)


def is_call_span(attrs: Attributes) -> bool:
    """Whether the span describes one module call (a forward or a layer), from its attributes."""
    return A.TRAINING in attrs or A.INPUT_COUNT in attrs or A.OUTPUT_COUNT in attrs


def _shape(attrs: Attributes, key: str, charset: Charset) -> str | None:
    value = attrs.get(key)
    if isinstance(value, (list, tuple)) and all(isinstance(dim, int) for dim in value):
        return format_shape([int(dim) for dim in value], charset)
    return None


def _input_shapes(attrs: Attributes, charset: Charset) -> str:
    count = attrs.get(A.INPUT_COUNT)
    if isinstance(count, int) and count > 1:
        shapes = [_shape(attrs, A.input_shape_key(i), charset) for i in range(min(count, MAX_SHAPES_SHOWN))]
        text = ", ".join(shape for shape in shapes if shape is not None)
        return text + (f" +{count - MAX_SHAPES_SHOWN}" if count > MAX_SHAPES_SHOWN else "")
    return _shape(attrs, A.INPUT_SHAPE, charset) or "-"


def _output_shapes(attrs: Attributes, charset: Charset) -> str:
    count = attrs.get(A.OUTPUT_COUNT)
    if not isinstance(count, int) or count == 0:
        return "-"
    shapes = [_shape(attrs, A.output_shape_key(i), charset) for i in range(min(count, MAX_SHAPES_SHOWN))]
    text = ", ".join(shape for shape in shapes if shape is not None)
    return text + (f" +{count - MAX_SHAPES_SHOWN}" if count > MAX_SHAPES_SHOWN else "")


def describe_call(attrs: Attributes, charset: Charset = UNICODE) -> str:
    """``1×3×32×32 → 1×1344×85, 1×3×4×4×85  float32 cpu  41.6 MFLOPs`` for a forward or layer span.

    With FlopCounterMode's count on the span too, and different, it follows: ``(torch 41.1 MFLOPs)``.
    """
    parts = [_input_shapes(attrs, charset) + charset.arrow + _output_shapes(attrs, charset)]
    dtype = attrs.get(A.INPUT_DTYPE)
    out_dtype = attrs.get(A.OUTPUT_DTYPE)
    where = []
    if isinstance(dtype, str):
        changed = isinstance(out_dtype, str) and out_dtype != dtype
        where.append(f"{dtype}{charset.arrow.strip()}{out_dtype}" if changed else dtype)
    device, autocast = attrs.get(A.DEVICE), attrs.get(A.AUTOCAST)
    if isinstance(device, str):
        where.append(device)
    if isinstance(autocast, str):
        where.append(f"autocast {autocast}")
    if attrs.get(A.TRAINING) is True:
        where.append("train")
    if where:
        parts.append(" ".join(where))
    flops = attrs.get(A.FLOPS)
    if isinstance(flops, int) and not isinstance(flops, bool):
        parts.append(format_flops(flops) + _torch_flops(flops, attrs.get(A.FLOPS_TORCH)) + _achieved(attrs))
    device_ms = attrs.get(A.DEVICE_TIME_MS)
    if isinstance(device_ms, float):
        parts.append(f"device {format_duration(round(device_ms * 1e6))}")
    return "  ".join(parts)


def _torch_flops(thop: int, torch: AttributeValue | None) -> str:
    """`` (torch 16.4 GFLOPs)`` when FlopCounterMode's count is there and differs from thop's."""
    if not isinstance(torch, int) or isinstance(torch, bool) or torch == thop:
        return ""
    return f" (torch {format_flops(torch)})"


def format_rate(flops_per_s: float) -> str:
    """SI-scaled FLOP/s with one decimal: ``2.5e12`` → ``2.5 TFLOP/s``."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if flops_per_s >= scale:
            return f"{flops_per_s / scale:.1f} {prefix}FLOP/s"
    return f"{flops_per_s:.1f} FLOP/s"


def _achieved(attrs: Attributes) -> str:
    """`` at 2.5 TFLOP/s (0.3% of peak)``, or nothing without an achieved rate."""
    rate = attrs.get(A.ACHIEVED_FLOPS_PER_S)
    if not isinstance(rate, float):
        return ""
    fraction = attrs.get(A.PEAK_FRACTION)
    peak = f" ({fraction * 100:.1f}% of peak)" if isinstance(fraction, float) else ""
    return f" at {format_rate(rate)}{peak}"


def _short_key(key: str) -> str:
    return key.removeprefix(A.NAMESPACE + ".")


PLAIN_NUMBER_KEYS: frozenset[str] = frozenset(
    {A.PROFILE_IMGSZ, A.PROFILE_INPUT, A.EPOCH, A.STEP, A.LAYER_INDEX, A.MODEL_NC, A.MODEL_LAYERS, A.LAYERS}
)
"""Integers that are sizes, counters or indices (``profile.imgsz=1280``), shown without grouping."""


def describe_result(attrs: Attributes, omit: Collection[str] = ()) -> str:
    """A phase's summary: its attributes as ``key=value`` (namespace dropped), the phase tag omitted.

    Counts such as parameters are grouped by thousands (``7,235,389``); sizes, indices and
    counters (`PLAIN_NUMBER_KEYS`) are not."""
    return " ".join(
        f"{_short_key(key)}={_plain(value) if key in PLAIN_NUMBER_KEYS else format_value(value)}"
        for key, value in attrs.items()
        if key != A.PHASE and key not in omit
    )


def span_label(span: ReadableSpan) -> str:
    """The span's name, with ``#index`` for a layer: ``Conv #3``."""
    attrs = span.attributes or {}
    index = attrs.get(A.LAYER_INDEX)
    return f"{span.name} #{index}" if isinstance(index, int) else span.name


def _error(span: ReadableSpan) -> str | None:
    if span.status.status_code is not StatusCode.ERROR:
        return None
    return f"ERROR {span.status.description}" if span.status.description else "ERROR"


# --- lines of the tree (shared by the live processor and `yolospan show`) ---------------------------

_BOLD, _DIM, _RED, _RESET = "\033[1m", "\033[2m", "\033[31m", "\033[0m"


def use_color(stream: TextIO) -> bool:
    """Colours only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    return _isatty(stream) and not os.environ.get("NO_COLOR")


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def group_line(name: str, depth: int, charset: Charset = UNICODE, *, color: bool = False) -> str:
    """The header that opens a span with something printed inside it: ``│ ┌ stride_probe``."""
    return charset.guide * depth + charset.open + _paint(name, _BOLD, color)


def span_line(
    span: ReadableSpan,
    *,
    depth: int,
    grouped: bool,
    call: bool,
    charset: Charset = UNICODE,
    color: bool = False,
) -> str:
    """The line a finished span is printed as: its label, details, error and duration.

    ``grouped``: the span's header was printed (it closes a group with ``└``); ``call``: the span
    is a module call (a forward or a layer) and shows shapes and FLOPs rather than its attributes.
    """
    attrs = span.attributes or {}
    call = call or is_call_span(attrs)
    label = span_label(span)
    if grouped:
        head = charset.close + _paint(label, _BOLD, color)
    elif call:
        head = f"{label:<12}"  # aligns the shapes after short layer names
    else:
        head = label
    parts = [charset.guide * depth + head]
    # The run id is the same on every span of a run: shown once, on the trace's root.
    details = (
        describe_call(attrs, charset)
        if call
        else describe_result(attrs, omit=() if depth == 0 else (A.RUN_ID,))
    )
    if details:
        parts.append(details)
    error = _error(span)
    if error is not None:
        parts.append(_paint(error, _RED, color))
    if span.start_time is not None and span.end_time is not None:
        parts.append(_paint(format_duration(span.end_time - span.start_time), _DIM, color))
    return "  ".join(parts)


# --- the processor --------------------------------------------------------------------------------


class _Node:
    """An open span: where it sits in the tree, whether it is a module call, whether it was opened."""

    __slots__ = ("call", "depth", "label", "opened", "parent_id")

    def __init__(self, label: str, parent_id: int | None, depth: int, call: bool) -> None:
        self.label = label
        self.parent_id = parent_id
        self.depth = depth
        self.call = call
        self.opened = False


class ConsoleTreeProcessor(SpanProcessor):
    """Prints the span tree to ``stream`` while it is recorded (for the terminal, not for machines).

    ``layers=False`` hides layer spans. Colours are used only when ``stream`` is a terminal and
    ``NO_COLOR`` is unset. Writing never raises into the traced code: a broken stream is logged once.
    """

    def __init__(self, stream: TextIO, *, layers: bool = True, color: bool | None = None) -> None:
        self._stream = stream
        self._layers = layers
        if color is None:
            color = use_color(stream)
        self._color = color
        self._charset = charset_for(stream)
        self._nodes: dict[int, _Node] = {}
        self._lock = threading.Lock()
        self._broken = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        parent_id = parent.span_id if parent is not None else None
        with self._lock:
            parent_node = self._nodes.get(parent_id) if parent_id is not None else None
            depth = parent_node.depth + 1 if parent_node is not None else 0
            # Attributes are not known yet (the tracer sets them when a call ends), but the tree is:
            # a module call is a `forward` span or a span inside one (its layers).
            call = span.name == A.SPAN_FORWARD or (parent_node is not None and parent_node.call)
            self._nodes[span.context.span_id] = _Node(span.name, parent_id, depth, call)
            # A unit of work opens as soon as its first child starts, so phases show up live; a
            # module call opens only when something inside it is printed (layers may be hidden).
            if parent_node is not None and not parent_node.opened and not parent_node.call:
                self._open_chain(parent_node)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        with self._lock:
            node = self._nodes.pop(context.span_id, None)
            if node is None:
                node = self._finished_child(span)  # a layer span handed over finished: no on_start
            if node is None:
                return
            attrs = span.attributes or {}
            if not node.opened and not self._layers and A.LAYER_INDEX in attrs:
                return
            parent = self._nodes.get(node.parent_id) if node.parent_id is not None else None
            if parent is not None:
                self._open_chain(parent)
            self._write(self._end_line(span, node))

    def _finished_child(self, span: ReadableSpan) -> _Node | None:
        """The node of a span that reaches ``on_end`` only (yolospan's layer spans with the SDK's
        provider), placed under its parent if that is still open."""
        parent_id = span.parent.span_id if span.parent is not None else None
        parent = self._nodes.get(parent_id) if parent_id is not None else None
        if parent is None:
            return None
        return _Node(span.name, parent_id, parent.depth + 1, parent.call)

    def shutdown(self) -> None:
        self.force_flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            return False
        return True

    # --- drawing ----------------------------------------------------------------------------------

    def _open_chain(self, node: _Node) -> None:
        """Print the headers of ``node`` and of every ancestor not opened yet, outermost first."""
        chain: list[_Node] = []
        current: _Node | None = node
        while current is not None and not current.opened:
            chain.append(current)
            current = self._nodes.get(current.parent_id) if current.parent_id is not None else None
        for pending in reversed(chain):
            pending.opened = True
            self._write(group_line(pending.label, pending.depth, self._charset, color=self._color))

    def _end_line(self, span: ReadableSpan, node: _Node) -> str:
        return span_line(
            span,
            depth=node.depth,
            grouped=node.opened,
            call=node.call,
            charset=self._charset,
            color=self._color,
        )

    def _write(self, line: str) -> None:
        if self._broken:
            return
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except BrokenPipeError:
            self._broken = True  # the reader went away (`| head`): not a fault, nothing to report
        except (OSError, ValueError):
            self._broken = True
            _log.warning("console span tree disabled: cannot write to %r", self._stream, exc_info=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
