"""`yolospan.diff`: alignment by place, timings as distributions, attribute changes, bad input."""

from __future__ import annotations

import pytest
from synthetic_traces import forward, layer, make_trace, phase

import yolospan
from yolospan import attributes as A
from yolospan.compare import DiffError, TraceDiff, select


def rows_by_label(result: TraceDiff, phase_name: str) -> dict[str, object]:
    from yolospan.compare import row_label

    found = result.phase(phase_name)
    return {row_label(row, found): row for row in found.rows}


def test_spans_are_aligned_by_phase_forward_and_layer_not_by_order_in_the_file():
    a = make_trace(phase("predict", forward(10, layer(0, "Conv", 4), layer(1, "C3", 6))))
    b = make_trace(phase("predict", forward(20, layer(0, "Conv", 4), layer(1, "C3", 12))))
    result = yolospan.diff(a, list(reversed(b)))
    rows = rows_by_label(result, "predict")
    assert list(rows) == ["predict (phase)", "forward", "#0 Conv", "#1 C3"]
    assert rows["forward"].ratio == pytest.approx(2.0)
    assert rows["#0 Conv"].ratio == pytest.approx(1.0)
    assert rows["#1 C3"].ratio == pytest.approx(2.0)
    assert rows["#1 C3"].a.median_ns == 6_000_000 and rows["#1 C3"].b.median_ns == 12_000_000
    assert all(row.side == "both" and row.changes == () for row in rows.values())


def test_a_layer_of_another_type_at_the_same_index_is_on_one_side_each():
    a = make_trace(phase("predict", forward(10, layer(0, "Conv", 4), layer(1, "C3", 6))))
    b = make_trace(phase("predict", forward(10, layer(0, "Conv", 4), layer(1, "SPPF", 6))))
    rows = rows_by_label(yolospan.diff(a, b), "predict")
    assert rows["#1 C3"].side == "a" and rows["#1 C3"].b is None and rows["#1 C3"].ratio is None
    assert rows["#1 SPPF"].side == "b" and rows["#1 SPPF"].a is None


def test_shapes_dtypes_devices_and_flops_that_differ_are_listed():
    a = make_trace(phase("predict", forward(10, layer(0, "Conv", 4), shape=(1, 3, 320, 320), flops=100)))
    b = make_trace(
        phase(
            "predict",
            forward(
                10,
                layer(0, "Conv", 4, **{A.DEVICE: "cuda:0"}),
                shape=(1, 3, 640, 640),
                dtype="bfloat16",
                flops=400,
                attrs={A.AUTOCAST: "bfloat16"},
            ),
        )
    )
    rows = rows_by_label(yolospan.diff(a, b), "predict")
    changes = {c.key: (c.a, c.b) for c in rows["forward"].changes}
    assert changes[A.INPUT_SHAPE] == ([1, 3, 320, 320], [1, 3, 640, 640])
    assert changes[A.INPUT_DTYPE] == ("float32", "bfloat16")
    assert changes[A.AUTOCAST] == (None, "bfloat16")
    assert changes[A.FLOPS] == (100, 400)
    assert A.DEVICE not in changes
    assert A.FLOPS_METHOD not in changes  # how a count was obtained is not a difference in the call
    layer_changes = {c.key: (c.a, c.b) for c in rows["#0 Conv"].changes}
    assert layer_changes[A.DEVICE] == ("cpu", "cuda:0")


def test_repeated_forwards_of_a_phase_are_compared_as_distributions():
    a = make_trace(phase("train", *[forward(ms, layer(0, "Conv", ms / 2)) for ms in (10, 11, 12, 13, 50)]))
    b = make_trace(phase("train", *[forward(ms) for ms in (20, 22, 24)]))
    result = yolospan.diff(a, b)
    train = result.phase("train")
    assert train.forwards == ((0, 5, 3),)
    assert train.distributions
    rows = rows_by_label(result, "train")
    fwd = rows["forward"]
    assert (fwd.a.count, fwd.b.count) == (5, 3)
    assert fwd.a.median_ns == 12_000_000  # the slow outlier moves the median by nothing
    assert fwd.a.spread_ns == 2_000_000  # interquartile range 11..13 ms
    assert fwd.b.median_ns == 22_000_000
    assert fwd.ratio == pytest.approx(22 / 12)
    assert (fwd.a.min_ns, fwd.a.max_ns) == (10_000_000, 50_000_000)
    assert rows["#0 Conv"].side == "a" and rows["#0 Conv"].a.count == 5


def test_different_calls_in_one_phase_get_their_own_forward_number():
    # amp_check: an fp32 forward, then one under autocast; repeated, each is its own distribution.
    def amp(ms: float) -> list:
        return [forward(ms), forward(2 * ms, attrs={A.AUTOCAST: "bfloat16"})]

    a = make_trace(phase("amp_check", *amp(10), *amp(10)))
    b = make_trace(phase("amp_check", *amp(30)))
    check = yolospan.diff(a, b).phase("amp_check")
    assert check.forwards == ((0, 2, 1), (1, 2, 1))
    rows = {(row.kind, row.forward): row for row in check.rows}
    assert rows[("forward", 0)].ratio == pytest.approx(3.0)
    assert rows[("forward", 1)].a.median_ns == 20_000_000
    assert rows[("forward", 1)].ratio == pytest.approx(3.0)


def test_the_phase_span_attributes_that_differ_are_listed_on_the_phase_row():
    a = make_trace(phase("info_profile", forward(1), **{A.GFLOPS: 4.1, A.PROFILE_IMGSZ: 320}))
    b = make_trace(phase("info_profile", forward(1), **{A.GFLOPS: 16.6, A.PROFILE_IMGSZ: 640}))
    (phase_row,) = [row for row in yolospan.diff(a, b).rows if row.kind == "phase"]
    assert {c.key: (c.a, c.b) for c in phase_row.changes} == {
        A.GFLOPS: (4.1, 16.6),
        A.PROFILE_IMGSZ: (320, 640),
    }


def test_a_phase_spanned_by_another_name_is_found_by_its_phase_attribute():
    a = make_trace(*[phase("train", forward(10), root="train_step") for _ in range(3)])
    b = make_trace(*[phase("train", forward(20), root="train_step") for _ in range(3)])
    rows = rows_by_label(yolospan.diff(a, b), "train")
    assert rows["train_step (phase)"].a.count == 3
    assert rows["forward"].ratio == pytest.approx(2.0)


def test_regressions_are_forwards_and_layers_slower_by_more_than_the_percentage():
    a = make_trace(phase("predict", forward(10, layer(0, "Conv", 4), layer(1, "C3", 6))))
    b = make_trace(phase("predict", forward(11, layer(0, "Conv", 6), layer(1, "C3", 5))))
    result = yolospan.diff(a, b)
    assert [(r.kind, r.layer_type) for r in result.regressions(20)] == [("layer", "Conv")]
    assert [(r.kind, r.layer_type) for r in result.regressions(5)] == [("forward", None), ("layer", "Conv")]
    assert result.regressions(50) == []


def test_select_sorts_by_the_biggest_change_either_way_and_cuts():
    a = make_trace(phase("p", forward(10, layer(0, "Conv", 4), layer(1, "C3", 6), layer(2, "SPPF", 1))))
    b = make_trace(phase("p", forward(10, layer(0, "Conv", 5), layer(1, "C3", 1), layer(3, "Detect", 1))))
    shown = select(yolospan.diff(a, b), sort="ratio", top=3).phase("p")
    assert [(row.kind, row.layer_type) for row in shown.rows] == [
        ("layer", "C3"),  # 6 ms -> 1 ms: the biggest change, though faster
        ("layer", "Conv"),
        ("phase", None),
    ]
    everything = select(yolospan.diff(a, b), sort="ratio").phase("p")
    assert [row.side for row in everything.rows][-2:] == ["a", "b"]  # one-sided rows come last


def test_phases_are_limited_on_request():
    a = make_trace(phase("stride_probe", forward(1)), phase("fuse", forward(1)))
    b = make_trace(phase("stride_probe", forward(1)))
    with pytest.raises(DiffError, match=r"^B: phase fuse is missing \(it is in A\); compare the common"):
        yolospan.diff(a, b)
    assert [p.phase for p in yolospan.diff(a, b, phases=["stride_probe"]).phases] == ["stride_probe"]
    with pytest.raises(DiffError, match="B: phase 'fuse' is not in it"):
        yolospan.diff(a, b, phases=["fuse"])


def test_nothing_in_common_says_so():
    a = make_trace(phase("stride_probe", forward(1)))
    b = make_trace(phase("train", forward(1)))
    with pytest.raises(DiffError, match=r"nothing in common.*\(A: stride_probe; B: train\)"):
        yolospan.diff(a, b)


def test_spans_without_phases_or_forwards_cannot_be_compared():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("http.request").end()
    with pytest.raises(DiffError, match=r"^A: no forward or phase spans to compare \(1 spans\)"):
        yolospan.diff(exporter.get_finished_spans(), make_trace(phase("p", forward(1))))


def test_to_dict_is_plain_json():
    import json

    a = make_trace(phase("predict", forward(10, layer(0, "Conv", 4)), **{A.GFLOPS: 1.5}))
    b = make_trace(phase("predict", forward(20, layer(0, "Conv", 4), shape=(1, 3, 64, 64))))
    data = json.loads(json.dumps(yolospan.diff(a, b).to_dict()))
    (predict,) = data["phases"]
    fwd = predict["rows"][1]
    assert fwd["kind"] == "forward" and fwd["ratio"] == pytest.approx(2.0)
    assert fwd["a"]["median_ns"] == 10_000_000 and fwd["a"]["count"] == 1
    assert {"key": A.INPUT_SHAPE, "a": [1, 3, 32, 32], "b": [1, 3, 64, 64]} in fwd["changes"]
    assert predict["rows"][0]["changes"] == [{"key": A.GFLOPS, "a": 1.5, "b": None}]


def test_a_layer_with_several_inputs_lists_each_changed_input_once():
    def concat(size: int):
        shapes = {
            A.INPUT_COUNT: 2,
            A.input_shape_key(0): [1, 8, size, size],
            A.input_shape_key(1): [1, 4, size, size],
        }
        return layer(1, "Concat", 1, **{A.INPUT_SHAPE: [1, 8, size, size], **shapes})

    rows = rows_by_label(
        yolospan.diff(
            make_trace(phase("p", forward(1, concat(8)))), make_trace(phase("p", forward(1, concat(16))))
        ),
        "p",
    )
    assert [c.key for c in rows["#1 Concat"].changes] == [A.INPUT_SHAPE, A.input_shape_key(1)]


def test_a_phase_run_inside_another_phase_is_not_a_repeat_of_the_outer_one(spans):
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 1)).eval()
    x = torch.zeros(1, 3, 8, 8)

    def create() -> list:
        with yolospan.phase("info_profile", module=net):
            net(x)
        with yolospan.phase("fuse"), yolospan.phase("info_profile", module=net):
            net(x)
        run = list(spans.exporter.get_finished_spans())
        spans.clear()
        return run

    result = yolospan.diff(create(), create())
    assert [p.phase for p in result.phases] == ["info_profile", "fuse", "fuse/info_profile"]
    assert result.phase("info_profile").forwards == ((0, 1, 1),)
    assert result.phase("fuse/info_profile").forwards == ((0, 1, 1),)
