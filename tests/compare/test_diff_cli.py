"""``yolospan diff`` on trace files: tables, the regression gate, JSON, and one-line errors."""

from __future__ import annotations

import json

import pytest
from synthetic_traces import forward, layer, phase

from yolospan import attributes as A
from yolospan.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("yolospan: error: ")
    return lines[0]


@pytest.fixture
def pair(trace_file):
    a = trace_file(
        "a",
        phase("stride_probe", forward(100, layer(0, "Conv", 40), layer(1, "C3", 60))),
        phase("info_profile", forward(10), **{A.GFLOPS: 4.1}),
    )
    b = trace_file(
        "b",
        phase(
            "stride_probe",
            forward(
                150,
                layer(0, "Conv", 40, **{A.DEVICE: "cuda:0"}),
                layer(1, "C3", 110),
                shape=(1, 3, 640, 640),
                flops=4000,
            ),
        ),
        phase("info_profile", forward(10), **{A.GFLOPS: 16.6}),
    )
    return a, b


def test_one_table_per_phase_with_durations_ratio_and_what_differs(capsys, pair):
    code, out, err = run_cli(capsys, "diff", *pair)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:2] == [f"A: {pair[0]}", f"B: {pair[1]}"]
    assert "phase stride_probe" in lines and "phase info_profile" in lines
    fwd = next(line for line in lines if line.strip().startswith("forward"))
    assert "100.0 ms" in fwd and "150.0 ms" in fwd and "1.50" in fwd
    # What changed everywhere is said once, above the table; the rest on its row.
    shared = "  in every row below: input.shape 1×3×32×32 → 1×3×640×640; flops 1.0 KFLOPs → 4.0 KFLOPs"
    assert lines[lines.index("phase stride_probe") + 1] == shared
    assert fwd.endswith("1.50")
    (conv,) = [line for line in lines if "#0 Conv" in line]
    assert conv.endswith("1.00  device cpu → cuda:0")
    (c3,) = [line for line in lines if "#1 C3" in line]
    assert "60.0 ms" in c3 and "110.0 ms" in c3 and "1.83" in c3
    (profile,) = [line for line in lines if "info_profile (phase)" in line]
    assert "gflops 4.1 → 16.6" in profile


def test_fail_over_exits_1_with_one_line_per_regression(capsys, pair):
    code, out, err = run_cli(capsys, "diff", *pair, "--fail-over", "40")
    assert code == 1
    assert "phase stride_probe" in out  # the table is still printed
    assert err.splitlines() == [
        "yolospan diff: regression: phase stride_probe, forward: 100.0 ms → 150.0 ms, 50% slower (over 40%)",
        "yolospan diff: regression: phase stride_probe, #1 C3: 60.0 ms → 110.0 ms, 83% slower (over 40%)",
    ]
    assert run_cli(capsys, "diff", *pair, "--fail-over", "90")[0] == 0


def test_the_gate_sees_rows_that_top_does_not_show(capsys, pair):
    code, out, err = run_cli(capsys, "diff", *pair, "--top", "1", "--fail-over", "60")
    assert code == 1
    assert "#1 C3" not in out and "#1 C3" in err


def test_sort_ratio_and_top(capsys, pair):
    code, out, _ = run_cli(capsys, "diff", *pair, "--sort", "ratio", "--top", "2")
    assert code == 0
    table = out.split("phase stride_probe")[1].split("phase info_profile")[0].strip().splitlines()
    assert [line.split()[0] for line in table[1:]] == ["span", "#1", "forward"]


def test_json(capsys, pair):
    code, out, _ = run_cli(capsys, "diff", *pair, "--json", "--phase", "stride_probe")
    assert code == 0
    data = json.loads(out)
    assert [p["phase"] for p in data["phases"]] == ["stride_probe"]
    rows = data["phases"][0]["rows"]
    assert [r["kind"] for r in rows] == ["phase", "forward", "layer", "layer"]
    assert rows[3]["layer_type"] == "C3" and rows[3]["ratio"] == pytest.approx(110 / 60)


def test_distributions_show_median_and_spread(capsys, trace_file):
    a = trace_file("a", phase("train", *[forward(ms) for ms in (10, 11, 12, 13, 50)], root="train_step"))
    b = trace_file("b", phase("train", *[forward(ms) for ms in (20, 20, 20)], root="train_step"))
    code, out, _ = run_cli(capsys, "diff", a, b)
    assert code == 0
    assert "forward 0: 5 in A, 3 in B; times are median ± half the interquartile range" in out
    (fwd,) = [line for line in out.splitlines() if line.strip().startswith("forward ")]
    assert "12.0 ms ±1.0" in fwd and "20.0 ms" in fwd and "1.67" in fwd


def test_not_a_trace_is_one_line_exit_2(capsys, tmp_path, trace_file):
    good = trace_file("good", phase("p", forward(1)))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for bad, problem in (
        (text, "notes.txt:1: not JSON"),
        (empty, "empty.jsonl: not a trace (no spans in it)"),
        (tmp_path / "missing.jsonl", "missing.jsonl: trace file not found"),
    ):
        code, _, err = run_cli(capsys, "diff", good, bad)
        assert code == 2, bad
        assert problem in one_line_error(err)


def test_nothing_in_common_and_a_missing_phase_are_exit_2(capsys, trace_file):
    probe = trace_file("probe", phase("stride_probe", forward(1)))
    train = trace_file("train", phase("train", forward(1)))
    both = trace_file("both", phase("stride_probe", forward(1)), phase("fuse", forward(1)))
    code, _, err = run_cli(capsys, "diff", probe, train)
    assert code == 2 and "have nothing in common" in one_line_error(err)
    code, _, err = run_cli(capsys, "diff", both, probe)
    assert code == 2
    assert f"{probe}: phase fuse is missing (it is in {both})" in one_line_error(err)
    code, out, _ = run_cli(capsys, "diff", both, probe, "--phase", "stride_probe")
    assert code == 0 and "fuse" not in out
