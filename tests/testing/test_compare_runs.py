"""The spans-fixture helpers for comparing two runs: take_run, compare_runs, assert_same_calls."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolospan import attributes as A
from yolospan.testing import SpanAssertionError, assert_same_calls, compare_runs, take_run
from yolospan.tracing import phase


def model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1)).eval()


def predict(net: nn.Module, size: int = 16, *, times: int = 2) -> None:
    with phase("predict", module=net, layers=True), torch.no_grad():
        for _ in range(times):
            net(torch.zeros(1, 3, size, size))


def test_take_run_keeps_the_run_and_clears_the_recorder(spans):
    net = model()
    predict(net)
    first = take_run(spans)
    assert len(spans) == 0
    assert [s.name for s in first].count("forward") == 2
    predict(net, times=3)
    result = compare_runs(first, spans)
    assert result.phase("predict").forwards == ((0, 2, 3),)


def test_autocast_changes_only_dtypes_and_the_autocast_tag(spans):
    net = model()
    predict(net)
    fp32 = take_run(spans)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        predict(net)
    result = assert_same_calls(fp32, spans, ignore=("autocast", "input.dtype", "yolospan.output.dtype"))
    rows = {(row.kind, row.layer_index): row for row in result.rows}
    assert {c.key for c in rows[("layer", 0)].changes} == {A.AUTOCAST, A.OUTPUT_DTYPE}
    assert {c.key for c in rows[("layer", 1)].changes} == {A.AUTOCAST, A.INPUT_DTYPE, A.OUTPUT_DTYPE}


def test_a_difference_that_is_not_ignored_fails_with_each_place(spans):
    net = model()
    predict(net, size=16)
    small = take_run(spans)
    predict(net, size=32)
    with pytest.raises(SpanAssertionError) as failure:
        assert_same_calls(small, spans, ignore=("flops",))
    message = str(failure.value)
    assert message.splitlines()[0] == "the runs differ in 8 place(s):"
    assert "  phase predict, forward: input.shape 1×3×16×16 → 1×3×32×32" in message
    assert "  phase predict, #2 Conv2d: output.0.shape 1×2×16×16 → 1×2×32×32" in message
    assert "flops" not in message


def test_a_layer_on_one_side_only_fails(spans):
    predict(model())
    three = take_run(spans)
    predict(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU()).eval())
    with pytest.raises(SpanAssertionError, match=r"phase predict, #2 Conv2d: only in A"):
        assert_same_calls(three, spans.finished, ignore=("output.0.shape", "flops"))
