"""One self-contained HTML page with a waterfall per trace, like Jaeger's trace view, for offline use.

Everything is in the file: the spans as JSON, a small stylesheet and script (`_waterfall`), no
fonts, images or requests; a Content-Security-Policy forbids any fetch, so the page works from
an attachment, a CI artifact or a machine without network. Text is formatted here, by the console's
formatters (shapes, FLOPs, durations, attribute values), so the page says what the terminal says;
the script only lays out bars, collapses subtrees and fills the attribute panel.

Why hand-written: a waterfall is rows of absolutely positioned bars; the embeddable libraries that
draw one (Perfetto UI, speedscope) are whole applications of several MB that also want a server or
a file picker. For those, `yolospan show --chrome` writes their format instead.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import StatusCode

from yolospan import attributes as A
from yolospan.export._waterfall import SCRIPT, STYLE
from yolospan.export.console import (
    describe_call,
    describe_result,
    format_duration,
    format_flops,
    format_value,
    span_label,
)
from yolospan.export.spantree import SpanNode, Trace, summarize
from yolospan.export.tree import render_summary

__all__ = ["PHASE_COLORS", "phase_colors", "render_html", "waterfall_data"]

PHASE_COLORS: Mapping[str, str] = {
    A.SPAN_STRIDE_PROBE: "#4e79a7",
    A.SPAN_INFO_PROFILE: "#f28e2b",
    A.SPAN_AMP_CHECK: "#e15759",
    A.SPAN_FUSE: "#76b7b2",
    A.PHASE_TRAIN: "#59a14f",
    A.PHASE_VAL: "#b07aa1",
}
"""Bar colours of yolospan's phases; other phases take `_MORE_COLORS` in order of appearance."""

_MORE_COLORS = ("#edc948", "#ff9da7", "#9c755f", "#5f9ea0", "#d37295", "#8cd17d")
_NO_PHASE_COLOR = "#8a9099"
_TICKS = 8


def phase_colors(traces: Sequence[Trace]) -> dict[str, str]:
    """A colour for every phase in ``traces``: the fixed ones, then the spare palette in turn."""
    colors: dict[str, str] = {}
    spare = 0
    for trace in traces:
        for node in trace.walk():
            if node.phase is not None and node.phase not in colors:
                if node.phase in PHASE_COLORS:
                    colors[node.phase] = PHASE_COLORS[node.phase]
                else:
                    colors[node.phase] = _MORE_COLORS[spare % len(_MORE_COLORS)]
                    spare += 1
    return colors


def _ticks(total: int) -> list[tuple[float, str]]:
    """Ruler marks at a round step (1, 2 or 5 x 10^k ns), at most `_TICKS` + 1 of them."""
    if total <= 0:
        return [(0.0, format_duration(0))]
    step = 1
    while total / step > _TICKS:
        for factor in (2, 5 / 2, 2):  # 1 → 2 → 5 → 10
            step = int(step * factor)
            if total / step <= _TICKS:
                break
    return [(100 * at / total, format_duration(at)) for at in range(0, total + 1, step)]


def _flop_rate(flops: int, nanoseconds: int) -> str:
    per_second = round(flops * 1e9 / nanoseconds)
    return format_flops(per_second).removesuffix("s") + "/s"


def _status(node: SpanNode) -> str | None:
    status = node.span.status
    if status.status_code is not StatusCode.ERROR:
        return None
    return f"ERROR {status.description}" if status.description else "ERROR"


def _row(node: SpanNode, trace: Trace, index: Mapping[int, int], colors: Mapping[str, str]) -> dict[str, Any]:
    span, attrs = node.span, node.attributes
    details = describe_call(attrs) if node.call or span.name == A.SPAN_FORWARD else describe_result(attrs)
    offset = node.start - trace.start
    info: list[tuple[str, str]] = [
        ("start", "+" + format_duration(offset)),
        ("duration", format_duration(node.duration)),
        ("phase", node.phase or "-"),
    ]
    flops = attrs.get(A.FLOPS)
    if isinstance(flops, int) and not isinstance(flops, bool):
        info.append(("FLOPs", format_flops(flops)))
        if node.duration > 0:
            info.append(("achieved", _flop_rate(flops, node.duration)))
    error = _status(node)
    if error is not None:
        info.append(("status", error))
    info += [("span id", f"{node.span_id:016x}"), ("trace id", trace.hex_id)]
    return {
        "p": index[node.parent.span_id] if node.parent is not None else -1,
        "d": node.depth,
        "s": offset,
        "t": node.duration,
        "c": colors.get(node.phase, _NO_PHASE_COLOR) if node.phase is not None else _NO_PHASE_COLOR,
        "n": span_label(span),
        "dt": format_duration(node.duration),
        "x": details,
        "e": error,
        "k": 1 if node.children else 0,
        "i": info,
        "a": [(key, format_value(value)) for key, value in attrs.items()],
        "ev": [
            (
                event.name,
                "+" + format_duration(max(event.timestamp - trace.start, 0)),
                _event_text(event.attributes),
            )
            for event in span.events
        ],
    }


def _event_text(attributes: Mapping[str, Any] | None) -> str:
    return "  ".join(f"{key}={format_value(value)}" for key, value in (attributes or {}).items())


def waterfall_data(traces: Sequence[Trace]) -> dict[str, Any]:
    """What the page's script draws: per trace its rows (depth first), ruler, summary and legend."""
    colors = phase_colors(traces)
    out: list[dict[str, Any]] = []
    for trace in traces:
        nodes = list(trace.walk())
        index = {node.span_id: position for position, node in enumerate(nodes)}
        layered: set[int] = set()
        rows = []
        for position, node in enumerate(nodes):
            parent_layered = node.parent is not None and index[node.parent.span_id] in layered
            if node.is_layer or parent_layered:
                layered.add(position)
            row = _row(node, trace, index, colors)
            row["l"] = 1 if position in layered else 0  # a layer or inside one: hidden with "layers" off
            rows.append(row)
        total = trace.end - trace.start
        phases = list(dict.fromkeys(node.phase for node in nodes if node.phase is not None))
        out.append(
            {
                "id": trace.hex_id,
                "name": trace.name,
                "total": total,
                "label": f"{trace.name} · {len(nodes)} spans · {format_duration(total)} · {trace.hex_id[:8]}",
                "summary": render_summary(trace, summarize(trace)),
                "legend": [(phase, colors[phase]) for phase in phases],
                "ticks": _ticks(total),
                "rows": rows,
            }
        )
    return {"traces": out}


def _script_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element early (``</script>``, ``<!--``)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def render_html(traces: Sequence[Trace], *, title: str = "trace") -> str:
    """The whole page for ``traces``, as text."""
    spans = sum(len(trace.spans) for trace in traces)
    heading = f"{title} — {len(traces)} trace{'' if len(traces) == 1 else 's'}, {spans} spans"
    return _PAGE.format(
        title=html.escape(title),
        heading=html.escape(heading),
        style=STYLE,
        script=SCRIPT,
        data=_script_json(waterfall_data(traces)),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="yolospan show --html">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{heading}</h1>
<div class="controls">
<label>trace <select id="trace"></select></label>
<label><input type="checkbox" id="layers" checked> layers</label>
<span id="legend"></span>
</div>
<pre id="summary"></pre>
</header>
<main>
<section id="waterfall" tabindex="0" aria-label="waterfall"></section>
<aside id="panel"><p class="hint">Click a span to see its attributes.</p></aside>
</main>
<script type="application/json" id="yolospan-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
