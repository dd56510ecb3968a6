"""What tripped a new user on the command line (issue 17): each answer is one clear line, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yolospan.cli import main
from yolospan.export.console import describe_result
from yolospan.export.tracefile import read_trace_file

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("yolospan: error: ") and "Traceback" not in err
    return lines[0]


# --- 4. OTLP endpoints are checked before any work ----------------------------------------------


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_endpoint_variable_without_a_scheme_exits_2_before_the_model_is_built(
    capsys, monkeypatch, clean_otel_env, variable, tmp_path
):
    monkeypatch.setenv(variable, "127.0.0.1:4318")
    code, out, err = run_cli(capsys, "trace", "yolov5n", "--out", tmp_path / "t.jsonl")
    assert code == 2
    line = one_line_error(err)
    assert f"{variable}='127.0.0.1:4318'" in line and "http://127.0.0.1:4318" in line
    assert out == "" and not (tmp_path / "t.jsonl").exists()  # nothing ran, nothing written


def test_a_bad_endpoint_option_of_send_exits_2_naming_the_option(capsys, clean_otel_env, tmp_path):
    trace = tmp_path / "t.otlp.jsonl"
    trace.write_text("")
    code, _, err = run_cli(capsys, "send", trace, "--endpoint", "notaurl")
    assert code == 2
    assert "--endpoint='notaurl'" in one_line_error(err)


def test_send_checks_the_endpoint_variable_too(capsys, monkeypatch, clean_otel_env):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
    code, _, err = run_cli(capsys, "send")
    assert code == 2
    assert "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318'" in one_line_error(err)


def test_grpc_takes_a_bare_host_and_port_as_its_exporter_does(monkeypatch, clean_otel_env):
    from yolospan.delivery.endpoint import check_endpoint
    from yolospan.errors import UserError

    check_endpoint("localhost:4317", "X", "grpc")
    check_endpoint("https://collector.example:4318/base", "X", "http/protobuf")
    with pytest.raises(UserError, match=r"^X='http://host:99999' is not a valid URL") as error:
        check_endpoint("http://token@host:99999", "X", "http/protobuf")
    assert "token" not in str(error.value)  # user info is never shown


# --- 5. A closed pipe ends the run quietly -------------------------------------------------------


def test_piping_into_head_prints_no_traceback(tmp_path):
    command = f"{sys.executable} -m yolospan trace yolov5n --layers | head -2"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == "", result.stderr  # no BrokenPipeError, no "Exception ignored"
    assert result.returncode in (0, 1, 141)  # 1: Python's EPIPE status, as the recipe exits


# --- 8. The smaller items ------------------------------------------------------------------------


def test_out_below_a_file_says_not_a_directory(capsys, tmp_path, clean_otel_env):
    (tmp_path / "afile").write_text("")
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--out", tmp_path / "afile" / "x.jsonl")
    assert code == 2
    line = one_line_error(err)
    assert "is not a directory" in line and "File exists" not in line


@pytest.mark.parametrize(
    ("variable", "value"), [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_SAMPLER", "always_off")]
)
def test_nothing_recorded_is_said_instead_of_trace_written(
    capsys, monkeypatch, tmp_path, clean_otel_env, variable, value
):
    monkeypatch.setenv(variable, value)
    out = tmp_path / "t.jsonl"
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--exporter", "file", "--out", out)
    assert code == 0
    assert out.read_text() == ""
    assert "trace written" not in err
    assert f"nothing recorded ({variable}={value}" in err and f"{out} is empty" in err


def test_nothing_recorded_is_said_on_the_console_too(capsys, monkeypatch, clean_otel_env):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    code, out, err = run_cli(capsys, "trace", "yolov5n")
    assert (code, out) == (0, "")
    assert err == "nothing recorded (OTEL_SDK_DISABLED=true switches the OpenTelemetry SDK off)\n"


def test_a_written_trace_is_still_reported_as_written(capsys, tmp_path, clean_otel_env):
    out = tmp_path / "t.jsonl"
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--exporter", "file", "--out", out)
    assert code == 0 and f"trace written to {out}" in err and read_trace_file(out)


def test_image_sizes_and_indices_have_no_thousands_separator():
    line = describe_result(
        {"yolospan.profile.imgsz": 1280, "yolospan.params": 7235389, "yolospan.step": 12000}
    )
    assert line == "profile.imgsz=1280 params=7,235,389 step=12000"


def test_check_takes_options_after_the_positionals(capsys, tmp_path, clean_otel_env):
    trace = tmp_path / "t.jsonl"
    assert run_cli(capsys, "trace", "yolov5n", "--exporter", "file", "--out", trace)[0] == 0
    code, out, err = run_cli(capsys, "check", trace, "-q", "model.init == 1", "forward == 2")
    assert (code, out, err) == (0, "", "")
    code, out, _ = run_cli(capsys, "check", trace, "-q", "model.init == 5")
    assert code == 1 and out.startswith("FAIL  model.init == 5")


def test_unknown_options_are_still_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", str(tmp_path / "t.jsonl"), "--bogus", "model.init == 1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_spool_lists_and_clears_what_send_would_deliver(capsys, tmp_path, monkeypatch, clean_otel_env):
    spool = tmp_path / "spool"
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(spool))
    assert run_cli(capsys, "spool") == (0, f"the spool is empty ({spool})\n", "")
    assert run_cli(capsys, "trace", "yolov5n", "--exporter", "file", "--out", spool / "a.otlp.jsonl")[0] == 0
    (spool / "notes.txt").write_text("not a spool file")
    code, out, _ = run_cli(capsys, "spool", "list")
    assert code == 0
    assert f"{spool / 'a.otlp.jsonl'}  6 spans" in out
    assert out.splitlines()[-1] == "6 spans in 1 file; 'yolospan send' delivers them"
    assert run_cli(capsys, "spool", "clear")[1] == f"removed 1 file (6 spans) from {spool}\n"
    assert sorted(path.name for path in spool.iterdir()) == ["notes.txt"]  # only spool files go
    assert run_cli(capsys, "spool")[1] == f"the spool is empty ({spool})\n"
