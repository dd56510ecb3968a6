"""``yolospan check`` on trace files written by the trace-file exporter, and on malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from yolospan.cli import main
from yolospan.cli.check import split_arguments
from yolospan.export.tracefile import TraceFileExporter
from yolospan.tracing import use_tracer_provider


@pytest.fixture
def write_trace(tmp_path, init_tiny):
    """What ``yolospan trace --out`` does: a batch processor feeding the trace-file exporter."""

    def write(name: str, *, amp: bool = True, layers: bool = False) -> Path:
        path = tmp_path / name
        provider = TracerProvider(
            resource=Resource.create({"service.name": "yolospan"}), shutdown_on_exit=False
        )
        provider.add_span_processor(BatchSpanProcessor(TraceFileExporter(path)))
        with use_tracer_provider(provider):
            init_tiny(amp=amp, layers=layers)
        provider.shutdown()
        return path

    return write


@pytest.fixture
def trace_file(write_trace) -> Path:
    return write_trace("tiny.otlp.jsonl")


def test_all_expectations_hold(trace_file, capsys):
    code = main(
        [
            "check",
            str(trace_file),
            "model.init == 1",
            "forward[phase=stride_probe, input.shape=1x3x32x32] == 1",
            "forward[phase=info_profile, input.shape=1x3x16x16] == 1",
            "forward[phase=amp_check, input.shape=1x3x24x16] == 2",
            "forward[device=cpu, autocast=float16] == 0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        "ok    model.init == 1  (found 1)",
        "ok    forward[phase=stride_probe, input.shape=1x3x32x32] == 1  (found 1)",
        "ok    forward[phase=info_profile, input.shape=1x3x16x16] == 1  (found 1)",
        "ok    forward[phase=amp_check, input.shape=1x3x24x16] == 2  (found 2)",
        "ok    forward[device=cpu, autocast=float16] == 0  (found 0)",
    ]


def test_a_failing_expectation_exits_1_with_the_report(trace_file, capsys):
    code = main(
        [
            "check",
            str(trace_file),
            "model.init == 1",
            "forward[phase=amp_check, input.shape=1x3x640x480] == 2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(
        "ok    model.init == 1  (found 1)\n"
        "FAIL  forward[phase=amp_check, input.shape=1x3x640x480] == 2  (found 0)\n"
        "\n"
        "expected forward[phase=amp_check, input.shape=1x3x640x480] == 2, found 0\n"
        "nearest candidates:\n"
        "  #6 forward: input.shape=1x3x24x16 (want input.shape=1x3x640x480)\n"
    )
    assert (
        f"recorded spans (8, {trace_file}):\n#0 model.init\n├─ #1 stride_probe  phase=stride_probe\n" in out
    )
    assert "   ├─ #6 forward  phase=amp_check  1x3x24x16 → 1x192, 1x2x12x8  ◀ nearest\n" in out


def test_quiet_prints_only_failures(trace_file, capsys):
    assert main(["check", "-q", str(trace_file), "model.init == 1"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check", "-q", str(trace_file), "model.init == 1", "fuse == 1"]) == 1
    assert capsys.readouterr().out.startswith("FAIL  fuse == 1  (found 0)\n\nexpected fuse == 1, found 0\n")


def test_several_files_are_one_recording(write_trace, capsys):
    first = write_trace("a.jsonl")
    second = write_trace("b.jsonl", amp=False)
    assert main(["check", str(first), str(second), "model.init == 2", "forward[phase=amp_check] == 2"]) == 0
    assert main(["check", str(first), str(first), "model.init == 1"]) == 0  # the same spans count once
    capsys.readouterr()


def test_expect_option_and_the_argument_rule(trace_file, tmp_path, capsys, monkeypatch):
    assert main(["check", "-e", "model.init == 1", str(trace_file)]) == 0
    monkeypatch.chdir(tmp_path)
    odd = tmp_path / "x==1"
    odd.write_text(trace_file.read_text())
    assert main(["check", "x==1", "model.init == 1"]) == 0  # an existing file is a file
    capsys.readouterr()


def test_split_arguments(tmp_path):
    existing = tmp_path / "a=b.jsonl"
    existing.touch()
    files, expectations = split_arguments(
        [str(existing), "missing.jsonl", "forward == 1", "[phase=fuse]<1", "x = 1"]
    )
    assert files == [existing, Path("missing.jsonl")]
    assert expectations == ["forward == 1", "[phase=fuse]<1", "x = 1"]


def test_layer_spans_and_numeric_conditions(write_trace, capsys):
    path = write_trace("layers.jsonl", layers=True)
    code = main(
        [
            "check",
            str(path),
            "Conv2d[layer.index=0, flops>0] == 4",
            "SiLU[layer.index=1, layer.params=0] == 4",
            "*[layer.index] == 12",
            "forward[output.count=2, output.1.shape=1x2x*x*] == 4",
        ]
    )
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "{path}:1: not JSON"),
        ('{"resourceSpans": []}\n[1, 2]\n', "{path}:2: not an OTLP ExportTraceServiceRequest"),
        ('{"spans": []}\n', "{path}:1: not an OTLP ExportTraceServiceRequest"),
        (
            json.dumps(
                {
                    "resourceSpans": [
                        {
                            "scopeSpans": [
                                {"spans": [{"traceId": "zz", "spanId": "0102030405060708", "name": "x"}]}
                            ]
                        }
                    ]
                }
            ),
            "{path}:1: malformed OTLP JSON",
        ),
    ],
)
def test_malformed_files_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["check", str(path), "forward == 1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolospan: error: " + message.format(path=path))
    assert err.count("\n") == 1


def test_a_binary_file_exits_2(tmp_path, capsys):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert main(["check", str(path), "forward == 1"]) == 2
    assert "not a trace file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["{trace}", "forward[phase=] == 1"],
            "bad expectation 'forward[phase=] == 1': expected a value at column 15",
        ),
        (["{trace}", "forward[phase=stride_probe] = 1"], "use == to compare the count"),
        (["{trace}", "forward[phse=x] == 1"], "unknown attribute 'phse' (did you mean phase"),
        (["{trace}"], "no expectation given"),
        (["forward == 1"], "no trace file given"),
        (["{missing}", "forward == 1"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(trace_file, tmp_path, capsys, arguments, message):
    arguments = [a.format(trace=trace_file, missing=tmp_path / "missing.jsonl") for a in arguments]
    assert main(["check", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("yolospan: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_help_documents_the_grammar_and_the_argument_rule(capsys):
    with pytest.raises(SystemExit) as done:
        main(["check", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "an argument naming an existing file is a trace file" in text
    assert "Expectation grammar" in text
    assert "--expect" in text
    assert "Exit status: 0" in text
