from __future__ import annotations

import json
import subprocess
import sys

import pytest

from handbuilt_spans import SpanBuilder, model_init_trace, write_trace_file
from yolospan import attributes as A
from yolospan.cli import main

PROBE = "1×3×256×256 → 1×3×32×32×85  float32 cpu  1.0 MFLOPs"
PROFILE = "1×3×64×64 → 1×16×32×32  float32 cpu  3.5 MFLOPs"
AMP = "1×3×64×64 → 1×4×85  float32 cpu"

TREE = [
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
SUMMARY = [
    "trace 0af7651916cd43dd8448eb211c80319c: 10 spans, 100.0 ms",
    "  forwards  stride_probe 1  info_profile 1  amp_check 2",
    "  FLOPs     4.5 MFLOPs",
    "  time      stride_probe 10.0 ms  info_profile 18.0 ms  amp_check 50.0 ms",
]


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("yolospan: error: ")
    assert "Traceback" not in err
    return lines[0].removeprefix("yolospan: error: ")


@pytest.fixture
def trace_file(tmp_path):
    return write_trace_file(tmp_path / "run.otlp.jsonl", model_init_trace())


def test_show_prints_the_tree_and_the_summary(capsys, trace_file):
    code, out, err = run_cli(capsys, "show", trace_file)
    assert (code, err) == (0, "")
    assert out.splitlines() == TREE + SUMMARY


def test_layers_and_max_depth(capsys, trace_file):
    _, out, _ = run_cli(capsys, "show", trace_file, "--layers")
    assert f"│ │ │ Conv #0       {PROFILE}  6.8 ms" in out.splitlines()
    _, out, _ = run_cli(capsys, "show", trace_file, "--layers", "--max-depth", "1")
    assert out.splitlines() == ["model.init  model.name=yolov5n model.nc=80  100.0 ms", *SUMMARY]


def test_each_trace_is_closed_by_its_summary(capsys, tmp_path):
    b = model_init_trace()
    step = b.add("train_step", 200, 300, trace_id=7, attributes={A.PHASE: "train", A.STEP: 0})
    b.add("loss", 210, 220, parent=step, trace_id=7, attributes={A.PHASE: "train"})
    path = write_trace_file(tmp_path / "two.otlp.jsonl", b)
    code, out, _ = run_cli(capsys, "show", path)
    assert code == 0
    assert out.splitlines() == [
        *TREE,
        *SUMMARY,
        "",
        "┌ train_step",
        "│ loss  10.0 ms",
        "└ train_step  step=0  100.0 ms",
        f"trace {7:032x}: 2 spans, 100.0 ms",
        "  time      train 100.0 ms",
    ]
    _, out, _ = run_cli(capsys, "show", path, "--trace", "0000000000000000")
    assert out.splitlines()[0] == "┌ train_step"
    _, out, _ = run_cli(capsys, "show", path, "--trace", "0AF765")
    assert out.splitlines() == TREE + SUMMARY


def test_phase_keeps_that_phase_with_its_parents(capsys, trace_file):
    code, out, _ = run_cli(capsys, "show", trace_file, "--phase", "stride_probe")
    assert code == 0
    assert out.splitlines() == [
        "┌ model.init",
        "│ ┌ stride_probe",
        f"│ │ forward       {PROBE}  8.0 ms",
        "│ └ stride_probe  10.0 ms",
        "└ model.init  model.name=yolov5n model.nc=80  100.0 ms",
        "trace 0af7651916cd43dd8448eb211c80319c: 3 spans, 100.0 ms",
        "  forwards  stride_probe 1",
        "  FLOPs     1.0 MFLOPs",
        "  time      stride_probe 10.0 ms",
    ]


def test_unknown_trace_or_phase_is_a_one_line_error(capsys, trace_file):
    code, _, err = run_cli(capsys, "show", trace_file, "--trace", "ffff")
    assert code == 2
    assert one_line_error(err) == f"no trace id starting with ffff in {trace_file}"
    code, _, err = run_cli(capsys, "show", trace_file, "--phase", "fuse")
    assert code == 2
    assert one_line_error(err) == f"no span of phase 'fuse' in {trace_file}"


def test_a_damaged_file_shows_what_it_can_and_counts_the_rest_in_one_line(capsys, trace_file):
    lines = trace_file.read_text().splitlines()
    trace_file.write_text("\n".join([lines[0], "{oops", lines[1][:-40], lines[2]]) + "\n")
    code, out, err = run_cli(capsys, "show", trace_file)
    assert code == 0
    assert len(err.splitlines()) == 1
    assert err.startswith(f"yolospan: warning: could not read 2 lines (first: {trace_file}:2: not JSON (")
    # The cut line held info_profile's forward and layers and amp_check: amp_check's forwards are
    # roots now, and info_profile has nothing inside.
    assert out.splitlines() == [
        "┌ model.init",
        "│ ┌ stride_probe",
        f"│ │ forward       {PROBE}  8.0 ms",
        "│ └ stride_probe  10.0 ms",
        "│ info_profile  gflops=4.6  18.0 ms",
        "└ model.init  model.name=yolov5n model.nc=80  100.0 ms",
        f"forward       {AMP}  19.0 ms",
        f"forward       {AMP}  27.0 ms",
        "trace 0af7651916cd43dd8448eb211c80319c: 6 spans, 100.0 ms",
        "  forwards  stride_probe 1  amp_check 2",
        "  FLOPs     1.0 MFLOPs",
        "  time      stride_probe 10.0 ms  info_profile 18.0 ms  amp_check 46.0 ms",
    ]


def test_nothing_readable_exits_2_with_one_line(capsys, tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not a trace\n")
    code, out, err = run_cli(capsys, "show", garbage)
    assert (code, out) == (2, "")
    assert (
        one_line_error(err)
        == f"could not read 1 line (first: {garbage}:1: not JSON (Expecting value at column 1))"
    )
    code, _, err = run_cli(capsys, "show", tmp_path / "missing.jsonl")
    assert code == 2
    assert one_line_error(err) == f"could not read 1 file (first: {tmp_path / 'missing.jsonl'}: no such file)"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, _, err = run_cli(capsys, "show", empty)
    assert code == 2
    assert one_line_error(err) == f"no spans in {empty}"


def test_a_missing_file_next_to_a_good_one_is_only_counted(capsys, trace_file, tmp_path):
    code, out, err = run_cli(capsys, "show", tmp_path / "missing.jsonl", trace_file)
    assert code == 0
    assert out.splitlines() == TREE + SUMMARY
    assert (
        err
        == f"yolospan: warning: could not read 1 file (first: {tmp_path / 'missing.jsonl'}: no such file)\n"
    )


def test_html_and_chrome_files(capsys, trace_file, tmp_path):
    html_path, chrome_path = tmp_path / "out" / "view.html", tmp_path / "out" / "view.trace.json"
    code, out, _ = run_cli(capsys, "show", trace_file, "--html", html_path, "--chrome", chrome_path)
    assert code == 0
    assert out.splitlines() == [
        f"wrote {html_path} (1 trace, 10 spans)",
        f"wrote {chrome_path} (1 trace, 10 spans)",
    ]
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    events = json.loads(chrome_path.read_text())["traceEvents"]
    assert len([event for event in events if event["ph"] == "X"]) == 10


def test_phase_applies_to_the_written_files(capsys, trace_file, tmp_path):
    chrome_path = tmp_path / "amp.json"
    run_cli(capsys, "show", trace_file, "--phase", "amp_check", "--chrome", chrome_path)
    events = json.loads(chrome_path.read_text())["traceEvents"]
    assert sorted(e["name"] for e in events if e["ph"] == "X") == [
        "amp_check",
        "forward",
        "forward",
        "model.init",
    ]


def test_an_unwritable_output_is_a_one_line_error(capsys, trace_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "show", trace_file, "--html", blocker / "view.html")
    assert code == 2
    assert one_line_error(err).startswith(f"{blocker / 'view.html'}: cannot write the file (")


def test_max_depth_must_be_positive(capsys, trace_file):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", str(trace_file), "--max-depth", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_spans_of_a_single_span_trace(capsys, tmp_path):
    b = SpanBuilder()
    b.add("load", 0, 2.5)
    path = write_trace_file(tmp_path / "one.jsonl", b)
    _, out, _ = run_cli(capsys, "show", path)
    assert out.splitlines() == ["load  2.5 ms", "trace 0af7651916cd43dd8448eb211c80319c: 1 span, 2.5 ms"]


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    b = SpanBuilder()
    root = b.add("run", 0, 5000)
    for step in range(2000):  # far more output than a pipe buffers
        b.add("train_step", step, step + 1, parent=root, attributes={A.STEP: step})
    path = write_trace_file(tmp_path / "long.jsonl", b, per_line=512)
    process = subprocess.Popen(
        [sys.executable, "-m", "yolospan", "show", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().decode() == "┌ run\n"
    process.stdout.close()  # like `| head -1`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert err == ""
