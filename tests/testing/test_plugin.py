"""The pytest plugin, exercised through pytester: inner test files with no conftest at all."""

from __future__ import annotations

from importlib.metadata import entry_points

pytest_plugins = ["pytester"]

INNER_HEADER = """
import pytest
import torch
from torch import nn

import yolospan
from yolospan.tracing import phase, span


def init(model):
    with span("model.init"):
        with phase("stride_probe", module=model):
            model(torch.zeros(1, 3, 32, 32))
        with phase("info_profile", module=model):
            model(torch.zeros(1, 3, 16, 16))
"""


def test_the_plugin_is_registered_through_the_pytest11_entry_point():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("yolospan") == "yolospan.testing.pytest_plugin"


def test_a_passing_test_gets_the_spans_without_any_wiring(pytester):
    pytester.makepyfile(
        INNER_HEADER
        + """
def test_probe(spans):
    init(nn.Conv2d(3, 4, 3))
    spans.one("forward", phase="stride_probe", input_shape=[1, 3, 32, 32])
    assert spans.one("model.init").children.names() == ["stride_probe", "info_profile"]
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_failing_one_shows_the_tree_and_the_candidates(pytester):
    pytester.makepyfile(
        INNER_HEADER
        + """
def test_probe(spans):
    init(nn.Conv2d(3, 4, 3))
    spans.one("forward", phase="stride_probe", input_shape=[1, 3, 256, 256])
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '*spans.one("forward", phase="stride_probe", input_shape=[[]1, 3, 256, 256])',
            "E       yolospan.testing.SpanAssertionError: expected forward[[]phase=stride_probe, "
            "input.shape=1x3x256x256] == 1, found 0",
            "E       nearest candidates:",
            "E         #2 forward: input.shape=1x3x32x32 (want input.shape=1x3x256x256)",
            "E       recorded spans (5, SpanRecorder):",
            "E       #0 model.init",
            "E       ├─ #1 stride_probe  phase=stride_probe",
            "E       │  └─ #2 forward  phase=stride_probe  1x3x32x32 → 1x4x30x30  ◀ nearest",
            "E       └─ #3 info_profile  phase=info_profile",
            "E          └─ #4 forward  phase=info_profile  1x3x16x16 → 1x4x14x14  ◀ nearest",
        ]
    )
    # The failure points at the test's line, not into yolospan's internals.
    assert "_spans.py" not in result.stdout.str()


def test_a_failed_count_and_an_empty_recording_explain_themselves(pytester):
    pytester.makepyfile(
        INNER_HEADER
        + """
def test_count(spans):
    init(nn.Conv2d(3, 4, 3))
    spans.assert_count(2, "forward", phase="amp_check")

def test_nothing_recorded(spans):
    model = nn.Conv2d(3, 4, 3)
    from opentelemetry.sdk.trace import TracerProvider
    with yolospan.instrument(model, tracer_provider=TracerProvider()):
        model(torch.zeros(1, 3, 8, 8))
    spans.one("forward")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       yolospan.testing.SpanAssertionError: expected forward[[]phase=amp_check] == 2, found 0",
            "E       nearest candidates:",
            "E         #2 forward: phase=stride_probe (want phase=amp_check)",
            "E         #4 forward: phase=info_profile (want phase=amp_check)",
            "E       recorded spans (5, SpanRecorder):",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E       yolospan.testing.SpanAssertionError: expected forward == 1, found 0",
            "E       no spans were recorded (SpanRecorder)",
            "E       *code given its own tracer_provider= sends them elsewhere, pass spans.provider to it",
        ]
    )


def test_comparing_a_found_list_shows_the_offenders_in_the_tree(pytester):
    pytester.makepyfile(
        INNER_HEADER
        + """
def test_no_fp16_on_cpu(spans):
    init(nn.Conv2d(3, 4, 3))
    assert spans.find("forward", input_shape=[1, 3, 16, 16]) == []

def test_reversed(spans):
    init(nn.Conv2d(3, 4, 3))
    assert [] == spans.find("forward")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       assert [[]#4 forward] == []",
            "E         1 span found, marked in the tree:",
            "E         recorded spans (5, SpanRecorder):",
            "E         #0 model.init",
            "E            └─ #4 forward  phase=info_profile  1x3x16x16 → 1x4x14x14  ◀ found",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E       assert [[]] == [[]#2 forward, #4 forward]", "E         2 spans found, *"]
    )


def test_every_test_gets_a_fresh_recorder_and_the_global_provider_is_untouched(pytester):
    pytester.makepyfile(
        INNER_HEADER
        + """
from opentelemetry import trace

GLOBAL = trace.get_tracer_provider()

@pytest.mark.parametrize("run", [1, 2])
def test_isolated(spans, run):
    with span(f"run{run}"):
        pass
    assert spans.names() == [f"run{run}"]
    assert trace.get_tracer_provider() is GLOBAL

def test_after():
    from yolospan.tracing import resolve_provider
    assert resolve_provider() is GLOBAL
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_same_report_without_pytest(pytester):
    """``yolospan.testing`` works in plain Python; pytest is not imported for it."""
    script = pytester.makepyfile(
        """
import sys
import torch
from torch import nn
from yolospan.testing import SpanRecorder, SpanAssertionError
from yolospan.tracing import phase

model = nn.Conv2d(3, 4, 3)
with SpanRecorder() as spans, phase("stride_probe", module=model):
    model(torch.zeros(1, 3, 8, 8))
assert "pytest" not in sys.modules
for attempt in (lambda: spans.one("forward", phase="fuse"), lambda: spans.check("forward[phase=fuse] == 1")):
    try:
        attempt()
    except SpanAssertionError as error:
        print(error)
"""
    )
    result = pytester.runpython(script)
    assert result.ret == 0
    report = [
        "expected forward[[]phase=fuse] == 1, found 0",
        "nearest candidates:",
        "  #1 forward: phase=stride_probe (want phase=fuse)",
        "",
        "recorded spans (2, SpanRecorder):",
        "#0 stride_probe  phase=stride_probe",
        "└─ #1 forward  phase=stride_probe  1x3x8x8 → 1x4x6x6  ◀ nearest",
    ]
    result.stdout.fnmatch_lines(report + report)
