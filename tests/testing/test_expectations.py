from __future__ import annotations

import pytest

from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.testing import ExpectationError, parse_expectation
from yolospan.testing._query import build_selector


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("forward[phase=stride_probe] == 1", "forward[phase=stride_probe] == 1"),
        (
            "forward[phase=amp_check,input.shape=1x3x640x480] == 2",
            "forward[phase=amp_check, input.shape=1x3x640x480] == 2",
        ),
        ("  forward [ phase = fuse ]  !=  0 ", "forward[phase=fuse] != 0"),
        ("forward[yolospan.phase==fuse] >= 1", "forward[phase=fuse] >= 1"),
        ("model.init == 1", "model.init == 1"),
        ("* > 3", "* > 3"),
        ("[phase=info_profile] <= 2", "*[phase=info_profile] <= 2"),
        ("forward[] < 5", "forward < 5"),
        (
            "Conv[layer.index=0, flops>0, flops<=1e9] == 1",
            "Conv[layer.index=0, flops>0, flops<=1000000000.0] == 1",
        ),
        ("forward[input.shape=1x3x*x*] == 1", "forward[input.shape=[1, 3, *, *]] == 1"),
        ("forward[input.shape=1x...] == 1", "forward[input.shape=[1, ...]] == 1"),
        ("forward[input.shape=[1, 3, *, 480]] == 1", "forward[input.shape=[1, 3, *, 480]] == 1"),
        ("forward[output.3.shape=1x3x20x20x85] == 1", "forward[output.3.shape=1x3x20x20x85] == 1"),
        ("forward[training=false, device=cuda:0] == 0", "forward[training=false, device=cuda:0] == 0"),
        ("forward[!autocast, amp.max_abs_diff] == 0", "forward[!autocast, amp.max_abs_diff] == 0"),
        ("forward[autocast!=float16] == 4", "forward[autocast!=float16] == 4"),
        ("forward[phase~'amp_.*'] == 2", "forward[phase~'amp_.*'] == 2"),
        ("forward['my.own key'=\"a, b]\"] == 1", "forward['my.own key'='a, b]'] == 1"),
        ("'model init'[phase='true'] == 0", "'model init'[phase='true'] == 0"),
        ("forward[layer.from=[-1, 6]] == 1", "forward[layer.from=[-1, 6]] == 1"),
        ("forward[gflops=16.6] == 1", "forward[gflops=16.6] == 1"),
    ],
)
def test_valid_expectations_parse(text, normalised):
    expectation = parse_expectation(text)
    assert expectation.describe() == normalised
    assert expectation.text == text
    # What reports print parses back to the same expectation.
    assert parse_expectation(normalised).describe() == normalised


def test_values_are_typed_by_the_grammar():
    conditions = parse_expectation(
        "x[layer.index=3, training=true, gflops=16.6, device=cpu, phase='3', layer.from=[-1, 6]] == 1"
    ).selector.conditions
    values = {c.key: getattr(c.matcher, "value", getattr(c.matcher, "pattern", None)) for c in conditions}
    assert values == {
        A.LAYER_INDEX: 3,
        A.TRAINING: True,
        A.GFLOPS: 16.6,
        A.DEVICE: "cpu",
        A.PHASE: "3",
        A.LAYER_FROM: (-1, 6),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expectation at column 1"),
        ("   ", "empty expectation"),
        ("forward[phase=stride_probe]", "expected a comparison (== != >= <= > <) at column 28"),
        ("forward[phase=stride_probe] = 1", "use == to compare the count at column 29"),
        ("forward == ", "expected a count (a non-negative integer) at column 12"),
        ("forward == -1", "expected a count"),
        ("forward == 1.5", "unexpected text after the count at column 13"),
        ("forward == 1 extra", "unexpected text after the count"),
        ("forward[phase=] == 1", "expected a value at column 15"),
        ("forward[phase=x == 1", "expected ',' or ']' at column 17"),
        ("forward[phase=x,] == 1", "expected an attribute key at column 17"),
        ("forward[input.shap=1x3] == 1", "unknown attribute 'input.shap' (did you mean input.shape"),
        ("forward[color=red] == 1", "unknown attribute 'color' (quote other attribute keys in full)"),
        ("forward[yolospan.nope=1] == 1", "unknown attribute 'yolospan.nope'"),
        ("forward[flops>big] == 1", "'>' needs a number at column 15"),
        ("forward[flops>=true] == 1", "'>=' needs a number"),
        ("forward[phase~[1]] == 1", "'~' needs a regular expression"),
        ("forward[phase~'('] == 1", "bad regular expression"),
        ("forward[phase='open] == 1", "unterminated string at column 15"),
        ("forward[layer.from=[1, 2] == 1", "expected ',' or ']' at column 27"),
        ("forward[layer.from=[1 2]] == 1", "expected ',' or ']' in the list"),
        ("== 1", "expected a span name, '*' or '[' at column 1"),
        ("__import__('os').system('true') == 0", "expected a comparison"),
        ("forward[phase=__import__('os')] == 1", "expected ',' or ']'"),
    ],
)
def test_malformed_expectations_name_the_problem(text, message):
    with pytest.raises(ExpectationError) as failure:
        parse_expectation(text)
    assert message in str(failure.value)
    assert str(failure.value).startswith(f"bad expectation {text!r}: ")
    assert "\n" not in str(failure.value)
    assert isinstance(failure.value, UserError)


@pytest.mark.parametrize(
    ("expectation", "holds"),
    [
        ("forward == 4", True),
        ("forward != 4", False),
        ("forward >= 4", True),
        ("forward > 4", False),
        ("forward <= 3", False),
        ("forward < 5", True),
        ("* == 8", True),
        ("forward[phase=stride_probe, input.shape=1x3x32x32] == 1", True),
        ("forward[phase=amp_check, input.shape=1x3x24x16] == 2", True),
        ("forward[phase=amp_check, input.shape=1x3x*x*] == 2", True),
        ("forward[input.shape=1x...] == 4", True),
        ("forward[input.shape=...x16] == 3", True),
        ("forward[input.shape=[1, 3, *, 16]] == 3", True),
        ("forward[autocast] == 1", True),
        ("forward[!autocast] == 3", True),
        ("forward[autocast!=bfloat16] == 3", True),
        ("forward[autocast~'b?float16'] == 1", True),
        ("forward[training=true] == 1", True),
        ("forward[training=1] == 0", True),
        ("forward[flops>0, output.count=2] == 4", True),
        ("forward[output.1.shape=1x2x16x16] == 1", True),
        ("amp_check[amp.result=passed] == 1", True),
        ("model.init['yolospan.model.name'=tiny] == 1", True),
        ("[phase=amp_check] == 3", True),
    ],
)
def test_expectations_evaluate_on_recorded_spans(spans, init_tiny, expectation, holds):
    init_tiny()
    outcome = parse_expectation(expectation).evaluate(spans.finished)
    assert outcome.holds is holds


@pytest.mark.parametrize(
    "value",
    [
        "stride_probe",
        "cuda:0",
        "a b",
        "it's",
        'say "hi"',
        "true",
        "1x3",
        "",
        3,
        -1,
        2.5,
        True,
        [1, 3, "*", "..."],
        [-1, 6],
        None,
    ],
)
def test_what_the_python_api_reports_parses_back_to_the_same_selector(value):
    selector = build_selector("forward", None, {"device": value})
    text = f"{selector.describe()} == 1"
    parsed = parse_expectation(text).selector
    assert parsed.describe() == selector.describe()
    assert parsed.conditions[0].matcher == selector.conditions[0].matcher
