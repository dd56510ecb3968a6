from __future__ import annotations

import pytest
import torch
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags
from torch import nn

import yolospan
from yolospan.testing import SpanAssertionError, SpanList
from yolospan.testing._report import describe, render_tree
from yolospan.tracing import phase, span


def readable(
    name: str, span_id: int, parent: int | None, start: int, end: int, trace_id: int = 7
) -> ReadableSpan:
    def context(sid: int) -> SpanContext:
        return SpanContext(trace_id, sid, False, TraceFlags(TraceFlags.SAMPLED))

    return ReadableSpan(
        name=name,
        context=context(span_id),
        parent=None if parent is None else context(parent),
        start_time=start,
        end_time=end,
    )


def test_a_span_line_shows_name_phase_layer_shapes_dtype_autocast_and_errors(spans, init_tiny):
    init_tiny(layers=True)
    autocast = spans.one("forward", autocast="bfloat16")
    assert describe(autocast) == ("forward  phase=amp_check  1x3x24x16 → 1x192, 1x2x12x8  autocast=bfloat16")
    assert describe(autocast.children[0]) == (
        "Conv2d  phase=amp_check  layer=0  1x3x24x16 → 1x4x12x8  autocast=bfloat16"
    )
    assert describe(spans.one("model.init")) == "model.init"


def test_many_outputs_are_elided(spans):
    class Many(nn.Module):
        def forward(self, x):
            return [x] * 6

    with yolospan.instrument(Many()) as handle:
        handle.module(torch.zeros(2))
    assert describe(spans.one("forward")).endswith("2 → 2, 2, 2, 2, … (+2)")


def test_a_long_tree_summarises_unmarked_subtrees_then_cuts_around_the_marks(spans, tiny):
    with span("model.init"):
        for index in range(20):
            with phase("stride_probe", module=tiny, layers=True):
                tiny(torch.zeros(1, 3, 8, 8 + index))
    recorded = spans.finished
    assert len(render_tree(recorded)) == len(recorded) == 1 + 20 * 5
    target = recorded.find("SiLU")[7]
    lines = render_tree(recorded, {target.index: "here"}, max_lines=70)
    assert len(lines) == 1 + 20 * 3 + 2  # forwards keep their line; layers summarised, but the marked one
    assert lines[1:4] == [
        "├─ #1 stride_probe  phase=stride_probe",
        "│  └─ #2 forward  phase=stride_probe  1x3x8x8 → 1x32, 1x2x4x4",
        "│     └─ … 3 spans: Conv2d ×2, SiLU ×1",
    ]
    assert "│     ├─ #39 SiLU  phase=stride_probe  layer=1  1x4x4x8 → 1x4x4x8  ◀ here" in lines

    lines = render_tree(recorded, {target.index: "here"}, max_lines=10)
    assert lines == [
        "#0 model.init",
        "├─ #1 stride_probe  phase=stride_probe",
        "│  └─ #2 forward  phase=stride_probe  1x3x8x8 → 1x32, 1x2x4x4",
        "│     └─ … 3 spans: Conv2d ×2, SiLU ×1",
        "├─ #6 stride_probe  phase=stride_probe",
        "… 17 more lines",
        "├─ #36 stride_probe  phase=stride_probe",
        "│  └─ #37 forward  phase=stride_probe  1x3x8x15 → 1x64, 1x2x4x8",
        "… 1 more line",
        "│     ├─ #39 SiLU  phase=stride_probe  layer=1  1x4x4x8 → 1x4x4x8  ◀ here",
        "… 37 more lines",
    ]


def test_the_tree_shows_several_roots_in_order():
    spans = SpanList.from_readable(
        [readable("b", 3, None, 30, 40), readable("a", 1, None, 10, 20), readable("a.child", 2, 1, 11, 12)]
    )
    assert spans.tree() == "#0 a\n└─ #1 a.child\n#2 b"


def test_without_a_logical_clock_order_follows_timestamps_with_parents_first_on_ties():
    spans = SpanList.from_readable(
        [
            readable("child", 2, 1, 100, 100),
            readable("grandchild", 3, 2, 100, 100),
            readable("root", 1, None, 100, 200),
            readable("sibling", 4, 1, 150, 160),
        ]
    )
    assert spans.names() == ["root", "child", "grandchild", "sibling"]
    ticks = [(d["name"], d["start_time"], d["end_time"]) for d in spans.as_dicts(deterministic=True)]
    assert ticks == [("root", 0, 7), ("child", 1, 4), ("grandchild", 2, 3), ("sibling", 5, 6)]
    root = spans.one("root")
    assert root.children.names() == ["child", "sibling"]


def test_orphans_are_roots_and_duplicates_count_once():
    orphan = readable("orphan", 5, 99, 10, 20)
    spans = SpanList.from_readable([orphan, orphan, readable("other", 6, None, 30, 40)])
    assert spans.names() == ["orphan", "other"]
    assert spans.one("orphan").parent is None
    assert spans.one("orphan").as_dict(deterministic=True)["parent_id"] is None
    assert spans.one("orphan").as_dict()["parent_id"] == format(99, "016x")


def test_an_empty_recording_says_so_and_names_a_disabled_sdk(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with pytest.raises(SpanAssertionError) as failure:
        SpanList.from_readable([], source="empty.jsonl").one("forward")
    assert str(failure.value).splitlines() == [
        "expected forward == 1, found 0",
        "",
        "no spans were recorded (empty.jsonl)",
        "OTEL_SDK_DISABLED=true is set: the OpenTelemetry SDK records nothing",
    ]


def test_a_query_on_a_selection_says_how_much_it_searched(spans, init_tiny):
    init_tiny()
    with pytest.raises(SpanAssertionError) as failure:
        spans.phase("info_profile").one("forward", input_shape=[1, 3, 32, 32])
    first_line = str(failure.value).splitlines()[0]
    assert first_line == "expected forward[input.shape=1x3x32x32] == 1, found 0 (among 2 of 8 recorded spans)"
    assert "  #4 forward: input.shape=1x3x16x16 (want input.shape=1x3x32x32)" in str(failure.value)


def test_candidates_of_another_name_appear_only_without_same_name_ones(spans, init_tiny):
    init_tiny(layers=True)
    with pytest.raises(SpanAssertionError) as failure:
        spans.one("forwrd", phase="stride_probe", input_shape=[1, 3, 32, 32])
    assert "  #2 forward: name=forward (want forwrd)" in str(failure.value)
    with pytest.raises(SpanAssertionError) as failure:
        spans.one("Conv2d", phase="fuse")
    candidates = [line for line in str(failure.value).splitlines() if line.startswith("  #")]
    assert len(candidates) == 3
    assert all(" Conv2d: phase=" in line for line in candidates)


def test_an_input_dtype_other_than_float32_follows_the_input_shape(spans):
    model = nn.Linear(4, 2).to(torch.float64)
    with yolospan.instrument(model):
        model(torch.zeros(1, 4, dtype=torch.float64))
    assert describe(spans.one("forward")) == "forward  1x4 (float64) → 1x2"
