from __future__ import annotations

import io

from handbuilt_spans import MS, SpanBuilder, call_attributes, model_init_trace
from yolospan import attributes as A
from yolospan.export.console import ASCII, ConsoleTreeProcessor
from yolospan.export.spantree import build_traces, select_phase, select_traces, summarize
from yolospan.export.tree import render_summary, render_trace

PROBE = "1×3×256×256 → 1×3×32×32×85  float32 cpu  1.0 MFLOPs"
PROFILE = "1×3×64×64 → 1×16×32×32  float32 cpu  3.5 MFLOPs"
AMP = "1×3×64×64 → 1×4×85  float32 cpu"


def one_trace(builder: SpanBuilder):
    (trace,) = build_traces(builder.spans)
    return trace


def test_the_tree_of_a_finished_trace_without_layers():
    assert render_trace(one_trace(model_init_trace())) == [
        "┌ model.init",
        "│ ┌ stride_probe",
        f"│ │ forward       {PROBE}  8.0 ms",
        "│ └ stride_probe  10.0 ms",
        "│ ┌ info_profile",
        f"│ │ forward       {PROFILE}  16.0 ms",
        "│ └ info_profile  gflops=4.6  18.0 ms",
        "│ ┌ amp_check",
        f"│ │ forward       {AMP}  19.0 ms",
        f"│ │ forward       {AMP}  27.0 ms",
        "│ └ amp_check  amp.result=failed  ERROR AMP checks failed  50.0 ms",
        "└ model.init  model.name=yolov5n model.nc=80  100.0 ms",
    ]


def test_layers_open_their_forward_as_a_group():
    lines = render_trace(one_trace(model_init_trace()), layers=True)
    assert lines[4:10] == [
        "│ ┌ info_profile",
        "│ │ ┌ forward",
        f"│ │ │ Conv #0       {PROFILE}  6.8 ms",
        "│ │ │ Upsample #1   1×16×32×32 → 1×16×64×64  float32 cpu  0.50 ms",
        f"│ │ └ forward  {PROFILE}  16.0 ms",
        "│ └ info_profile  gflops=4.6  18.0 ms",
    ]
    assert len(lines) == 15


def test_max_depth_turns_groups_below_it_into_single_lines():
    assert render_trace(one_trace(model_init_trace()), layers=True, max_depth=2) == [
        "┌ model.init",
        "│ stride_probe  10.0 ms",
        "│ info_profile  gflops=4.6  18.0 ms",
        "│ amp_check  amp.result=failed  ERROR AMP checks failed  50.0 ms",
        "└ model.init  model.name=yolov5n model.nc=80  100.0 ms",
    ]
    assert render_trace(one_trace(model_init_trace()), max_depth=1) == [
        "model.init  model.name=yolov5n model.nc=80  100.0 ms"
    ]


def test_ascii_charset():
    lines = render_trace(one_trace(model_init_trace()), charset=ASCII, max_depth=2)
    assert lines[0] == "+ model.init"
    assert lines[1] == "| stride_probe  10.0 ms"
    assert lines[-1] == "` model.init  model.name=yolov5n model.nc=80  100.0 ms"


def test_the_summary_closes_each_trace():
    trace = one_trace(model_init_trace())
    assert render_summary(trace) == [
        "trace 0af7651916cd43dd8448eb211c80319c: 10 spans, 100.0 ms",
        "  forwards  stride_probe 1  info_profile 1  amp_check 2",
        "  FLOPs     4.5 MFLOPs",  # the forwards' FLOPs; their layers' are not counted twice
        "  time      stride_probe 10.0 ms  info_profile 18.0 ms  amp_check 50.0 ms",
    ]


def test_summary_of_a_trace_without_forwards_or_phases_is_one_line():
    b = SpanBuilder()
    b.add("load", 0, 2.5)
    assert render_summary(one_trace(b)) == ["trace 0af7651916cd43dd8448eb211c80319c: 1 span, 2.5 ms"]


def test_children_are_ordered_by_start_time_not_by_file_order():
    b = SpanBuilder()
    root = b.add("step", 0, 10)
    late = b.add("late", 5, 6, parent=root)
    early = b.add("early", 1, 2, parent=root)
    b.spans[:] = [late, early, root]  # as a batch exporter writes them: children end first
    assert [line.split("  ")[0] for line in render_trace(one_trace(b))] == [
        "┌ step",
        "│ early",
        "│ late",
        "└ step",
    ]


def test_a_span_whose_parent_is_missing_becomes_a_root_of_its_trace():
    b = model_init_trace()
    del b.spans[0]  # model.init lost: its three phases are roots now
    (trace,) = build_traces(b.spans)
    assert [root.span.name for root in trace.roots] == ["stride_probe", "info_profile", "amp_check"]
    assert render_trace(trace)[:3] == [
        "┌ stride_probe",
        f"│ forward       {PROBE}  8.0 ms",
        "└ stride_probe  10.0 ms",
    ]


def test_a_span_in_two_files_is_shown_once():
    spans = model_init_trace().spans
    (trace,) = build_traces(spans + spans)
    assert summarize(trace).spans == 10


def test_traces_are_ordered_by_start_and_selected_by_id_prefix():
    b = SpanBuilder()
    b.add("second", 20, 30, trace_id=0xBEEF << 64)
    b.add("first", 0, 10, trace_id=0xABC << 100)
    traces = build_traces(b.spans)
    assert [trace.name for trace in traces] == ["first", "second"]
    assert [trace.name for trace in select_traces(traces, ["000000000000BEEF"])] == ["second"]
    assert select_traces(traces, ["ff"]) == []


def test_phase_selection_keeps_the_phase_with_its_parents_and_drops_the_rest():
    (trace,) = select_phase(build_traces(model_init_trace().spans), "amp_check")
    assert render_trace(trace) == [
        "┌ model.init",
        "│ ┌ amp_check",
        f"│ │ forward       {AMP}  19.0 ms",
        f"│ │ forward       {AMP}  27.0 ms",
        "│ └ amp_check  amp.result=failed  ERROR AMP checks failed  50.0 ms",
        "└ model.init  model.name=yolov5n model.nc=80  100.0 ms",
    ]
    assert select_phase(build_traces(model_init_trace().spans), "fuse") == []


def test_the_run_id_shows_on_the_root_only_as_in_the_live_tree():
    b = SpanBuilder()
    step = b.add("train_step", 0, 10, attributes={A.RUN_ID: "r-1", A.PHASE: "train", A.STEP: 3})
    b.add("loss", 1, 2, parent=step, attributes={A.RUN_ID: "r-1", A.PHASE: "train", A.LOSS_TOTAL: 1.5})
    assert render_trace(one_trace(b)) == [
        "┌ train_step",
        "│ loss  loss.total=1.5  1.0 ms",
        "└ train_step  run.id=r-1 step=3  10.0 ms",
    ]


def _live(builder: SpanBuilder, *, layers: bool) -> list[str]:
    """What the live console printed while these spans ran (starts and ends replayed in time order)."""
    stream = io.StringIO()
    processor = ConsoleTreeProcessor(stream, layers=layers, color=False)
    moments = [(span.start_time, 1, span) for span in builder.spans]
    moments += [(span.end_time, 0, span) for span in builder.spans]  # at a tie, an end comes first
    for _, starting, span in sorted(moments, key=lambda m: (m[0], m[1])):
        if starting:
            processor.on_start(span)  # type: ignore[arg-type]  # reads only ids and the name
        else:
            processor.on_end(span)
    return stream.getvalue().splitlines()


def test_show_prints_what_the_live_console_printed():
    for layers in (False, True):
        b = model_init_trace()
        assert render_trace(one_trace(b), layers=layers) == _live(b, layers=layers)


def test_a_deep_tree_does_not_hit_the_recursion_limit():
    b = SpanBuilder()
    parent = None
    for depth in range(1500):
        parent = b.add("forward", depth * 0.001, 10, parent=parent, attributes=call_attributes([1], [1]))
    lines = render_trace(one_trace(b))
    assert len(lines) == 2 * 1500 - 1
    assert lines[-1].startswith("└ forward")


def test_durations_come_from_the_spans_nanoseconds():
    b = SpanBuilder()
    b.add("tiny", 0, 0.0123)
    assert render_trace(one_trace(b)) == ["tiny  0.01 ms"]
    assert b.spans[0].end_time - b.spans[0].start_time == round(0.0123 * MS)
