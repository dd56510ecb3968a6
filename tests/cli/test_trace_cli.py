from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolospan.cli import main
from yolospan.export.tracefile import read_trace_file
from yolospan.testing import SpanList
from yolospan.yolo.configs import config_dir


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("yolospan: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_trace_prints_the_live_tree_and_writes_a_trace_file(capsys, tmp_path, clean_otel_env):
    out_file = tmp_path / "run" / "yolov5n.otlp.jsonl"
    code, out, err = run_cli(capsys, "trace", "yolov5n", "--out", str(out_file))
    assert code == 0
    for name in ("model.init", "stride_probe", "info_profile", "amp_check"):
        assert name in out
    assert "1×3×256×256 → 1×3×32×32×85, 1×3×16×16×85, 1×3×8×8×85" in out
    assert "gflops=4.6" in out
    assert f"trace written to {out_file}" in err
    recorded = SpanList.from_readable(read_trace_file(out_file))
    recorded.one("model.init", model_name="yolov5n")
    recorded.one("forward", phase="stride_probe", input_shape=[1, 3, 256, 256])
    recorded.one("forward", phase="info_profile", input_shape=[1, 3, 32, 32])
    recorded.one("amp_check", amp_result="skipped")
    recorded.assert_none("forward", phase="amp_check")


def test_out_replaces_an_existing_file(capsys, tmp_path, clean_otel_env):
    out_file = tmp_path / "t.jsonl"
    out_file.write_text("stale\n")
    assert run_cli(capsys, "trace", "yolov5n", "--exporter", "file", "--out", str(out_file))[0] == 0
    assert "stale" not in out_file.read_text()
    assert len(SpanList.from_readable(read_trace_file(out_file)).find("model.init")) == 1


def test_layers_and_amp_on_with_a_custom_config(capsys, tmp_path, clean_otel_env):
    shipped = (config_dir() / "yolov5n.yaml").read_text()
    cfg = tmp_path / "my-model.yaml"
    cfg.write_text(shipped)
    out_file = tmp_path / "t.jsonl"
    code, out, _ = run_cli(
        capsys, "trace", str(cfg), "--nc", "3", "--layers", "--amp-check", "on", "--out", str(out_file)
    )
    assert code == 0
    recorded = SpanList.from_readable(read_trace_file(out_file))
    recorded.one("model.init", model_nc=3, model_name="my-model")
    amp_forwards = recorded.find("forward", phase="amp_check", input_shape=[1, 3, 640, 480])
    assert len(amp_forwards) == 2
    assert amp_forwards[1].attributes["yolospan.autocast"] == "bfloat16"
    assert all(forward.children for forward in recorded.find("forward"))  # --layers: a span per layer
    assert "Detect" in out


def test_otel_sdk_disabled_traces_nothing_but_still_runs(capsys, tmp_path, monkeypatch, clean_otel_env):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    out_file = tmp_path / "t.jsonl"
    code, out, _ = run_cli(capsys, "trace", "yolov5n", "--out", str(out_file))
    assert code == 0
    assert "model.init" not in out
    assert not out_file.exists() or out_file.read_text() == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "yolov5q"], "yolov5q"),
        (["trace", "missing/model.yaml"], "missing/model.yaml"),
        (["trace", "yolov5n", "--exporter", "file"], "--exporter file needs --out"),
        (["trace", "yolov5n", "--exporter", "console", "--out", "x.jsonl"], "--out needs the file exporter"),
        (["trace", "yolov5n", "--image", "no-such.jpg"], "no-such.jpg"),
        (["trace", "yolov5n", "--device", "tpu"], "tpu"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch, clean_otel_env, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in one_line_error(err)
    assert "model.init" not in out


def test_a_file_that_is_not_an_image_exits_2(capsys, tmp_path, clean_otel_env):
    bogus = tmp_path / "photo.jpg"
    bogus.write_text("not a jpeg")
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--image", str(bogus))
    assert code == 2
    assert "photo.jpg" in one_line_error(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_exits_2(capsys, clean_otel_env):
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--device", "cuda")
    assert code == 2
    assert "cuda" in one_line_error(err).lower()


@pytest.mark.parametrize(
    "argv",
    [
        ["trace", "yolov5n", "--nc", "0"],
        ["trace", "yolov5n", "--imgsz", "big"],
        ["trace", "yolov5n", "--amp-check", "sometimes"],
        ["trace", "yolov5n", "--exporter", "zipkin"],
        ["trace"],
        [],
    ],
)
def test_argument_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_help_is_complete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    top = capsys.readouterr().out
    for command in ("trace", "check", "send"):
        assert command in top
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    text = capsys.readouterr().out
    options = ("--nc", "--imgsz", "--device", "--amp-check", "--image", "--layers", "--exporter", "--out")
    assert all(option in text for option in options)


def test_the_console_script_runs_as_a_real_process(tmp_path):
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("nc: 80\nbackbone: [[-1, 1, \"__import__('os').system('touch pwned')\", []]]\nhead: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "yolospan", "trace", str(cfg)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists()


def test_a_checkout_path_to_models_traces_as_upstream_users_type_it(capsys, monkeypatch, clean_otel_env):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the checkout's root, where models/ lives
    code, out, _ = run_cli(capsys, "trace", "models/yolov5n.yaml", "--exporter", "console")
    assert code == 0
    assert "model.name=yolov5n" in out
