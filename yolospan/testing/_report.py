"""Failure text: the recorded span tree, the matches and the nearest candidates.

A failed span assertion should answer "what did run?" without a debugger, so every message
ends with the tree (names, phases, shapes), marks the spans it talks about and, when too few
spans matched, lists the near misses with the attributes that differed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Final

from yolospan import attributes as A
from yolospan.testing._expect import Outcome
from yolospan.testing._query import format_value, nearest
from yolospan.testing._views import ScopeView, SpanView

__all__ = ["describe", "expectation_failed", "expectations_failed", "names_failed", "render_tree"]

MAX_TREE_LINES: Final = 150
_SHOWN_OUTPUTS: Final = 4
_SHOWN_MATCHES: Final = 5


def _shape(value: object) -> str | None:
    return format_value(value) if isinstance(value, list) else None


def describe(span: SpanView) -> str:
    """One line: name, phase, layer, input shape (dtype unless float32) → output shapes, autocast, errors."""
    attrs = span.attributes
    parts = [span.name]
    if span.phase is not None:
        parts.append(f"phase={span.phase}")
    if isinstance(attrs.get(A.LAYER_INDEX), int):
        parts.append(f"layer={attrs[A.LAYER_INDEX]}")
    shape_in = _shape(attrs.get(A.INPUT_SHAPE))
    dtype = attrs.get(A.INPUT_DTYPE)
    if shape_in is not None and isinstance(dtype, str) and dtype != "float32":
        shape_in += f" ({dtype})"
    count = attrs.get(A.OUTPUT_COUNT)
    count = count if isinstance(count, int) else 0
    outputs = [_shape(attrs.get(A.output_shape_key(i))) or "?" for i in range(min(count, _SHOWN_OUTPUTS))]
    if count > _SHOWN_OUTPUTS:
        outputs.append(f"… (+{count - _SHOWN_OUTPUTS})")
    if shape_in is not None or outputs:
        parts.append(f"{shape_in or '?'} → {', '.join(outputs) or '-'}")
    if A.AUTOCAST in attrs:
        parts.append(f"autocast={attrs[A.AUTOCAST]}")
    if span.status == "ERROR":
        parts.append(f"ERROR {span.status_description or ''}".rstrip())
    return "  ".join(parts)


def render_tree(
    spans: Sequence[SpanView], marks: Mapping[int, str] | None = None, max_lines: int = MAX_TREE_LINES
) -> list[str]:
    """The recording as an indented tree; ``marks`` maps span indexes to a note at the line's end.

    Too long a tree loses detail from the bottom up: unmarked subtrees are summarised
    (``… 24 spans: Conv ×10, C3 ×8``) until it fits. A lone child is never summarised (the
    summary would take its line), so phases keep their forward's shapes. If that is not
    enough the tree is cut, but never the marked spans and their ancestors.
    """
    marks = marks or {}
    if not spans:
        return []
    by_index = {span.index: span for span in spans}
    keep: set[int] = set()
    for index in marks:
        span = by_index.get(index)
        while span is not None:
            keep.add(span.index)
            span = span.parent
    roots = [span for span in spans if span.parent is None]
    # Summarising at a depth changes the tree only where a span there has several children.
    forks = sorted({_depth(span) for span in spans if len(span.children) > 1}, reverse=True)
    if len(forks) > _MAX_LIMITS:  # a pathological recording: try a spread of them, not all
        forks = forks[:: -(-len(forks) // _MAX_LIMITS)]
    lines: list[tuple[str, int | None]] = []
    for limit in [None, *forks]:
        lines = []
        for position, root in enumerate(roots):
            _render(root, "", position == len(roots) - 1, 0, limit, marks, keep, lines, top=True)
        if len(lines) <= max_lines:
            return [text for text, _ in lines]
    return _cut(lines, keep, max_lines)


def _cut(lines: list[tuple[str, int | None]], keep: set[int], max_lines: int) -> list[str]:
    """The first lines that fit, plus every kept line, with a note where lines were left out."""
    kept = [position for position, (_, index) in enumerate(lines) if index in keep]
    room = max(max_lines - 1 - len(kept), 0)
    chosen = set(kept) | set(range(min(room, len(lines))))
    out: list[str] = []
    skipped = 0
    for position, (text, _) in enumerate(lines):
        if position in chosen:
            if skipped:
                out.append(_more(skipped))
                skipped = 0
            out.append(text)
        else:
            skipped += 1
    if skipped:
        out.append(_more(skipped))
    return out


def _more(count: int) -> str:
    return f"… {count} more line{'s' if count != 1 else ''}"


def _render(
    span: SpanView,
    lead: str,
    last: bool,
    depth: int,
    limit: int | None,
    marks: Mapping[int, str],
    keep: set[int],
    out: list[tuple[str, int | None]],
    *,
    top: bool = False,
) -> None:
    """Depth first, with an explicit stack: a recording may nest deeper than Python recurses."""
    stack = [(span, lead, last, depth, top)]
    while stack:
        span, lead, last, depth, top = stack.pop()
        branch = "" if top else ("└─ " if last else "├─ ")
        mark = f"  ◀ {marks[span.index]}" if span.index in marks else ""
        out.append((f"{lead}{branch}#{span.index} {describe(span)}{mark}", span.index))
        below = lead if top else lead + ("   " if last else "│  ")
        if len(below) > _MAX_LEAD:  # a very deep chain: keep each line short, mark the cut
            below = "…" + below[-(_MAX_LEAD - 1) :]
        children = list(span.children)
        if not children:
            continue
        if limit is not None and depth >= limit and span.index not in keep and len(children) > 1:
            out.append((f"{below}└─ {_summary(span)}", None))
            continue
        for position in range(len(children) - 1, -1, -1):
            stack.append((children[position], below, position == len(children) - 1, depth + 1, False))


def _depth(span: SpanView) -> int:
    depth = 0
    parent = span.parent
    while parent is not None:
        depth += 1
        parent = parent.parent
    return depth


_MAX_LEAD = 90  # characters of indentation at most
_MAX_LIMITS = 32  # summarising depths tried at most


def _summary(span: SpanView) -> str:
    descendants = span.descendants()
    counts = Counter(s.name for s in descendants).most_common()
    shown = ", ".join(f"{name} ×{n}" for name, n in counts[:4]) + (", …" if len(counts) > 4 else "")
    return f"… {len(descendants)} spans: {shown}"


def _tree_section(scope: ScopeView, marks: Mapping[int, str]) -> list[str]:
    recording = scope.recording
    spans = recording.spans
    if not spans:
        lines = [f"no spans were recorded ({recording.source})"]
        if recording.hint:
            lines.append(recording.hint)
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            lines.append("OTEL_SDK_DISABLED=true is set: the OpenTelemetry SDK records nothing")
        return lines
    return [f"recorded spans ({len(spans)}, {recording.source}):", *render_tree(spans, marks)]


def _mark(marks: dict[int, str], index: int, label: str) -> None:
    marks[index] = f"{marks[index]}, {label}" if index in marks else label


def _findings(outcome: Outcome, scope: ScopeView, marks: dict[int, str], tag: str) -> list[str]:
    expectation = outcome.expectation
    found = len(outcome.matches)
    lines = [f"expected {expectation.describe()}, found {found}"]
    if len(scope) != len(scope.recording.spans):
        lines[0] += f" (among {len(scope)} of {len(scope.recording.spans)} recorded spans)"
    if outcome.matches:
        shown = list(outcome.matches)[:_SHOWN_MATCHES]
        more = f" and {found - len(shown)} more" if found > len(shown) else ""
        lines.append("matches: " + ", ".join(f"#{s.index} {s.name}" for s in shown) + more)
        for span in outcome.matches:
            _mark(marks, span.index, f"match{tag}")
    if outcome.wants_more:
        candidates = nearest(expectation.selector, list(scope))
        if candidates:
            lines.append("nearest candidates:")
        for span, differences in candidates:
            lines.append(f"  #{span.index} {span.name}: " + "; ".join(str(d) for d in differences))
            _mark(marks, span.index, f"nearest{tag}")
    return lines


def expectation_failed(outcome: Outcome, scope: ScopeView) -> str:
    marks: dict[int, str] = {}
    lines = _findings(outcome, scope, marks, "")
    return "\n".join([*lines, "", *_tree_section(scope, marks)])


def expectations_failed(outcomes: Sequence[Outcome], scope: ScopeView) -> str:
    """Several failures share one tree; marks say which failure (by number) they belong to."""
    marks: dict[int, str] = {}
    lines = [f"{len(outcomes)} span expectation(s) failed:"] if len(outcomes) > 1 else []
    for number, outcome in enumerate(outcomes, start=1):
        tag = f" ({number})" if len(outcomes) > 1 else ""
        findings = _findings(outcome, scope, marks, tag)
        if len(outcomes) > 1:
            findings = [f"({number}) {findings[0]}", *("    " + line for line in findings[1:])]
        lines.extend(findings)
    return "\n".join([*lines, "", *_tree_section(scope, marks)])


def names_failed(spans: ScopeView, expected: list[str]) -> str:
    marks = {span.index: f"{position}" for position, span in enumerate(spans)}
    lines = [
        f"expected names {expected}",
        f"     got names {spans.names()}",
        "(the spans compared are marked with their position)",
    ]
    return "\n".join([*lines, "", *_tree_section(spans, marks)])
