from __future__ import annotations

import re

import pytest
import torch
from opentelemetry import trace
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.testing import SpanAssertionError, SpanRecorder, shorthands
from yolospan.testing._query import key_for_path, key_for_shorthand
from yolospan.tracing import phase, span


def test_the_seed_tree_in_one_line_each(spans, init_tiny):
    init_tiny()
    spans.one("forward", phase="stride_probe", input_shape=[1, 3, 32, 32])
    spans.one("forward", phase="info_profile", input_shape=[1, 3, 16, 16])
    spans.assert_count(2, "forward", phase="amp_check", input_shape=[1, 3, 24, 16])
    assert spans.names() == [
        "model.init",
        "stride_probe",
        "forward",
        "info_profile",
        "forward",
        "amp_check",
        "forward",
        "forward",
    ]


def test_find_returns_every_match_in_order_of_occurrence(spans, init_tiny):
    init_tiny()
    forwards = spans.find("forward")
    assert [f.phase for f in forwards] == ["stride_probe", "info_profile", "amp_check", "amp_check"]
    assert [f.index for f in forwards] == sorted(f.index for f in forwards)
    assert spans.find("forward", phase="fuse") == []
    assert len(spans.find()) == len(spans) == 8


def test_full_keys_go_through_attrs(spans, init_tiny):
    init_tiny(layers=True)
    convs = spans.find(attrs={A.LAYER_INDEX: 0})
    assert [c.name for c in convs] == ["Conv2d"] * 4
    assert spans.find(attrs={"not.a.yolospan.key": 1}) == []
    assert spans.find(attrs={A.LAYER_INDEX: 2}, layer_type="Conv2d", phase="info_profile")[0].attributes[
        A.LAYER_TYPE
    ] == ("Conv2d")


def test_values_match_exactly_with_bools_kept_apart_from_ints(spans, init_tiny):
    init_tiny()
    assert len(spans.find("forward", training=True)) == 1
    assert spans.find("forward", training=1) == []
    assert len(spans.find("forward", output_count=2)) == 4
    assert spans.find("forward", output_count=2.5) == []


def test_predicates_regexes_and_absence(spans, init_tiny):
    init_tiny(layers=True)
    assert len(spans.find("forward", flops=lambda f: f > 0)) == 4
    assert spans.names()[:2] == ["model.init", "stride_probe"]
    assert {s.name for s in spans.find(re.compile("Conv2d|SiLU"))} == {"Conv2d", "SiLU"}
    assert [s.name for s in spans.find(lambda name: name.endswith("_probe"))] == ["stride_probe"]
    autocast = spans.one("forward", autocast="bfloat16")
    assert spans.find("forward", phase="amp_check", autocast=None) == [spans.find("forward")[2]]
    assert autocast.index > spans.find("forward")[2].index
    # A predicate is never called for an absent attribute.
    assert spans.find("model.init", flops=lambda f: True) == []


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ([1, 3, 32, 32], True),
        ([1, 3, "*", "*"], True),
        ([1, "...", 32], True),
        (["..."], True),
        ([1, 3, 32, 32, "..."], True),
        ((1, 3, 32, 32), True),
        ([1, 3, lambda h: h % 16 == 0, "*"], True),
        ([1, 3, "*"], False),
        ([1, 3, 32, 32, "*"], False),
        ([2, "..."], False),
        ([1, 3, lambda h: h % 5 == 0, "*"], False),
        ([], False),
    ],
)
def test_shape_patterns(spans, init_tiny, pattern, matches):
    init_tiny()
    assert len(spans.find("forward", phase="stride_probe", input_shape=pattern)) == int(matches)


def test_indexed_output_shapes_have_shorthands(spans, init_tiny):
    init_tiny()
    probe = spans.one("forward", phase="stride_probe", output_0_shape=[1, 512], output_1_shape=[1, 2, 16, 16])
    assert probe.attributes[A.output_shape_key(1)] == [1, 2, 16, 16]


def test_unknown_shorthands_are_refused_with_a_suggestion(spans):
    with pytest.raises(TypeError, match=r"'input_shap'; did you mean input_shape, .*attrs="):
        spans.find("forward", input_shap=[1, 3, 32, 32])


def test_shorthands_are_derived_from_the_contract_module():
    table = shorthands()
    keys = [getattr(A, name) for name in A.__all__ if name.isupper()]
    contract_keys = {k for k in keys if isinstance(k, str) and k.startswith("yolospan.") and "{" not in k}
    assert set(table.values()) == contract_keys
    assert len(set(table)) == len(table)
    assert table["phase"] == A.PHASE
    assert table["input_shape"] == A.INPUT_SHAPE
    assert table["amp_max_abs_diff"] == A.AMP_MAX_ABS_DIFF
    assert key_for_shorthand("input_3_shape") == A.input_shape_key(3)
    assert key_for_shorthand("output_12_shape") == A.output_shape_key(12)
    assert key_for_path("output.12.shape") == A.output_shape_key(12)
    assert key_for_path("yolospan.layer.from") == A.LAYER_FROM
    assert key_for_shorthand("output_x_shape") is None
    assert key_for_path("input.shap") is None


def test_attributes_are_plain_python(spans, init_tiny):
    init_tiny()
    forward = spans.one("forward", phase="stride_probe")
    shape = forward.attributes[A.INPUT_SHAPE]
    assert type(shape) is list
    assert shape == [1, 3, 32, 32]
    assert isinstance(forward.readable.attributes[A.INPUT_SHAPE], tuple)  # what the SDK holds


def test_navigation(spans, init_tiny):
    init_tiny(layers=True)
    root = spans.one("model.init")
    assert root.parent is None
    assert root.children.names() == ["stride_probe", "info_profile", "amp_check"]
    probe_forward = spans.one("forward", phase="stride_probe")
    assert probe_forward.parent is spans.one("stride_probe")
    assert probe_forward.children.names() == ["Conv2d", "SiLU", "Conv2d"]
    assert [s.name for s in probe_forward.ancestors()] == ["stride_probe", "model.init"]
    assert root.descendants().names()[:6] == [
        "stride_probe",
        "forward",
        "Conv2d",
        "SiLU",
        "Conv2d",
        "info_profile",
    ]
    assert len(root.descendants()) == len(spans) - 1
    assert spans.roots == [root]
    # Queries chain on any selection: the children of one forward, the spans of a phase.
    assert probe_forward.children.one("Conv2d", layer_index=2).attributes[A.LAYER_INDEX] == 2
    amp = spans.phase("amp_check")
    assert amp.names()[0] == "amp_check"
    assert len(amp.find("forward")) == 2
    assert amp.roots.names() == ["amp_check"]


def test_order_of_occurrence_is_the_order_spans_started(spans):
    with span("outer"):
        with span("first"):
            pass
        with span("second"), span("inner"):
            pass
    assert spans.names() == ["outer", "first", "second", "inner"]
    assert spans.exporter.get_finished_spans()[0].name == "first"  # the exporter sees end order


def test_one_fails_with_the_tree_and_the_nearest_candidates(spans, init_tiny):
    init_tiny()
    with pytest.raises(SpanAssertionError) as failure:
        spans.one("forward", phase="stride_probe", input_shape=[1, 3, 256, 256])
    message = str(failure.value)
    assert message.splitlines()[0] == (
        "expected forward[phase=stride_probe, input.shape=1x3x256x256] == 1, found 0"
    )
    assert (
        "nearest candidates:\n  #2 forward: input.shape=1x3x32x32 (want input.shape=1x3x256x256)\n" in message
    )
    assert "recorded spans (8, SpanRecorder):" in message
    assert "#0 model.init" in message
    assert "│  └─ #2 forward  phase=stride_probe  1x3x32x32 → 1x512, 1x2x16x16  ◀ nearest" in message


def test_one_fails_when_several_match_and_marks_them(spans, init_tiny):
    init_tiny()
    with pytest.raises(SpanAssertionError) as failure:
        spans.one("forward", phase="amp_check")
    message = str(failure.value)
    assert message.startswith(
        "expected forward[phase=amp_check] == 1, found 2\nmatches: #6 forward, #7 forward\n"
    )
    assert "nearest candidates" not in message
    assert message.count("◀ match") == 2


def test_assert_count_returns_the_matches_and_assert_none_names_offenders(spans, init_tiny):
    init_tiny()
    matched = spans.assert_count(2, "forward", phase="amp_check")
    assert [m.index for m in matched] == [6, 7]
    spans.assert_none("forward", device="cpu", input_dtype="float16")
    with pytest.raises(SpanAssertionError, match="found 1") as failure:
        spans.assert_none("forward", device="cpu", autocast=re.compile("b?float16"))
    assert "autocast=bfloat16  ◀ match" in str(failure.value)


def test_assert_names_shows_the_tree(spans, init_tiny):
    init_tiny()
    root = spans.one("model.init")
    root.children.assert_names(["stride_probe", "info_profile", "amp_check"])
    with pytest.raises(SpanAssertionError) as failure:
        root.children.assert_names(["stride_probe", "amp_check", "info_profile"])
    message = str(failure.value)
    assert "expected names ['stride_probe', 'amp_check', 'info_profile']" in message
    assert "#5 amp_check  phase=amp_check  ◀ 2" in message


def test_check_uses_the_expectation_grammar(spans, init_tiny):
    init_tiny(amp=False)
    spans.check("forward[phase=stride_probe, input.shape=1x3x32x32] == 1", "forward[phase=amp_check] == 0")
    with pytest.raises(SpanAssertionError) as failure:
        spans.check("model.init == 1", "forward[phase=amp_check] == 2", "forward[flops>0] < 1")
    message = str(failure.value)
    assert message.startswith(
        "2 span expectation(s) failed:\n(1) expected forward[phase=amp_check] == 2, found 0"
    )
    assert "(2) expected forward[flops>0] < 1, found 2" in message
    assert "#2 forward  phase=stride_probe  1x3x32x32 → 1x512, 1x2x16x16  ◀ nearest (1), match (2)" in message


def test_a_failing_forward_is_recorded_with_its_error(spans):
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom()
    with yolospan.instrument(model), pytest.raises(RuntimeError):
        model(torch.zeros(1))
    failed = spans.one("forward")
    assert failed.status == "ERROR"
    assert failed.status_description == "RuntimeError: boom"
    assert failed.events[0]["name"] == "exception"
    assert failed.events[0]["attributes"]["exception.message"] == "boom"
    assert "ERROR RuntimeError: boom" in spans.tree()


def test_deterministic_dicts_are_stable_snapshots(init_tiny):
    def record() -> list[dict]:
        with SpanRecorder() as recorder:
            init_tiny(amp=False)
        return recorder.as_dicts(deterministic=True)

    first, second = record(), record()
    assert first == second
    assert first[:3] == [
        {
            "name": "model.init",
            "trace_id": 1,
            "span_id": 1,
            "parent_id": None,
            "start_time": 0,
            "end_time": 11,
            "status": "UNSET",
            "attributes": {A.MODEL_NAME: "tiny"},
        },
        {
            "name": "stride_probe",
            "trace_id": 1,
            "span_id": 2,
            "parent_id": 1,
            "start_time": 1,
            "end_time": 4,
            "status": "UNSET",
            "attributes": {A.PHASE: "stride_probe"},
        },
        {
            "name": "forward",
            "trace_id": 1,
            "span_id": 3,
            "parent_id": 2,
            "start_time": 2,
            "end_time": 3,
            "status": "UNSET",
            "attributes": {
                A.TRAINING: True,
                A.INPUT_COUNT: 1,
                A.INPUT_SHAPE: [1, 3, 32, 32],
                A.INPUT_DTYPE: "float32",
                A.DEVICE: "cpu",
                A.PHASE: "stride_probe",
                A.OUTPUT_COUNT: 2,
                A.OUTPUT_DTYPE: "float32",
                A.output_shape_key(0): [1, 512],
                A.output_shape_key(1): [1, 2, 16, 16],
                A.FLOPS_METHOD: "thop",
                # By hand: conv 3→4, k3 s2 on 32x32 gives 4x16x16 outputs of 3x3x3 MACs each; the 1x1
                # head 4→2 gives 2x16x16 of 4 MACs each (biases free); FLOPs are 2 x MACs.
                A.FLOPS: 2 * (4 * 16 * 16 * 3 * 3 * 3 + 2 * 16 * 16 * 4),
            },
        },
    ]


def test_plain_dicts_keep_real_ids_and_times(spans, init_tiny):
    init_tiny(amp=False)
    root, probe = spans.as_dicts()[:2]
    assert re.fullmatch(r"[0-9a-f]{32}", root["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", probe["span_id"])
    assert probe["parent_id"] == root["span_id"]
    assert root["start_time"] <= probe["start_time"] <= probe["end_time"] <= root["end_time"]


def test_deterministic_events_lose_time_and_stack_trace(spans):
    with pytest.raises(ValueError), span("work"):
        raise ValueError("bad")
    (event,) = spans.one("work").as_dict(deterministic=True)["events"]
    assert event == {
        "name": "exception",
        "attributes": {
            "exception.type": "ValueError",
            "exception.message": "bad",
            "exception.escaped": "False",
        },
    }
    assert "exception.stacktrace" in spans.one("work").events[0]["attributes"]


def test_several_traces_are_numbered_in_order(spans):
    for name in ("a", "b"):
        with span(name), span(f"{name}.child"):
            pass
    assert [(d["name"], d["trace_id"]) for d in spans.as_dicts(deterministic=True)] == [
        ("a", 1),
        ("a.child", 1),
        ("b", 2),
        ("b.child", 2),
    ]


class TestTheRecorder:
    def test_it_routes_spans_without_touching_the_global_provider(self):
        before = trace.get_tracer_provider()
        with SpanRecorder() as recorder, phase("stride_probe"):
            assert trace.get_tracer_provider() is before
        assert recorder.names() == ["stride_probe"]

    def test_nothing_is_recorded_outside_its_block(self):
        recorder = SpanRecorder()
        with span("before"):
            pass
        with recorder, span("inside"):
            pass
        with span("after"):
            pass
        assert recorder.names() == ["inside"]

    def test_explicit_provider_use(self, tiny):
        recorder = SpanRecorder()
        with yolospan.instrument(tiny, tracer_provider=recorder.provider):
            tiny(torch.zeros(1, 3, 8, 8))
        assert len(recorder.find("forward")) == 1

    def test_an_inner_recorder_takes_over_and_hands_back(self):
        with SpanRecorder() as outer:
            with SpanRecorder() as inner, span("inner"):
                pass
            with span("outer"):
                pass
        assert inner.names() == ["inner"]
        assert outer.names() == ["outer"]

    def test_clear_forgets_and_queries_stay_live(self, spans):
        with span("setup"):
            pass
        assert len(spans) == 1
        spans.clear()
        assert len(spans) == 0
        with span("step"):
            pass
        assert spans.names() == ["step"]
        assert spans[0].name == "step"
        assert [s.name for s in spans] == ["step"]
        assert spans.finished.as_dicts(deterministic=True)[0]["start_time"] == 0

    def test_the_fixture_records_without_any_wiring(self, spans, tiny):
        with phase("stride_probe", module=tiny):
            tiny(torch.zeros(1, 3, 8, 8))
        assert spans.one("forward").parent is spans.one("stride_probe")
        assert "SpanRecorder: 2 finished spans" in repr(spans)
