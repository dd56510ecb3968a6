"""The console's span tree, drawn from finished spans: what `yolospan show` prints.

The lines are the live console's (`yolospan.export.console.span_line` and `group_line`), so a trace
file reads exactly as the run printed it: a span with something shown inside it is a group
(``┌ name`` ... ``└ name  details``), any other span one line. Each trace closes with its summary.
"""

from __future__ import annotations

from yolospan.export.console import UNICODE, Charset, format_duration, format_flops, group_line, span_line
from yolospan.export.spantree import SpanNode, Trace, TraceSummary, summarize

__all__ = ["render_summary", "render_trace"]


def render_trace(
    trace: Trace,
    *,
    layers: bool = False,
    max_depth: int | None = None,
    charset: Charset = UNICODE,
    color: bool = False,
) -> list[str]:
    """The tree's lines. ``layers=False`` hides layer spans (and what is inside them);
    ``max_depth`` shows that many levels (1: the roots only)."""

    def shown(node: SpanNode) -> bool:
        return (layers or not node.is_layer) and (max_depth is None or node.depth < max_depth)

    lines: list[str] = []
    # Depth first without recursion: (node, closing) pairs, closing lines pushed below the children.
    stack: list[tuple[SpanNode, bool]] = [(root, False) for root in reversed(trace.roots) if shown(root)]
    while stack:
        node, closing = stack.pop()
        children = [child for child in node.children if shown(child)]
        if closing or not children:
            lines.append(
                span_line(
                    node.span,
                    depth=node.depth,
                    grouped=closing,
                    call=node.call,
                    charset=charset,
                    color=color,
                )
            )
            continue
        lines.append(group_line(node.span.name, node.depth, charset, color=color))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))
    return lines


def render_summary(trace: Trace, summary: TraceSummary | None = None) -> list[str]:
    """``trace <id>: N spans, <duration>`` and, where there are any, forwards, FLOPs and time per phase."""
    summary = summary or summarize(trace)
    spans = f"{summary.spans} span" + ("" if summary.spans == 1 else "s")
    lines = [f"trace {trace.hex_id}: {spans}, {format_duration(summary.duration)}"]
    if summary.forwards:
        lines.append(
            "  forwards  " + "  ".join(f"{phase} {count}" for phase, count in summary.forwards.items())
        )
    if summary.flops is not None:
        lines.append(f"  FLOPs     {format_flops(summary.flops)}")
    if summary.phase_time:
        lines.append(
            "  time      "
            + "  ".join(f"{phase} {format_duration(ns)}" for phase, ns in summary.phase_time.items())
        )
    return lines
