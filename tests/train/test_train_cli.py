"""``yolospan train`` and ``yolospan data synth`` end to end: exit codes, trace files, sampling."""

from __future__ import annotations

import random

import pytest

from yolospan import attributes as A
from yolospan.cli import main
from yolospan.export.tracefile import read_trace_file
from yolospan.testing import SpanList

TRAIN = ("train", "--cfg", "yolov5n", "--imgsz", "64", "--batch", "4")


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("yolospan: error: ") and "Traceback" not in err
    return lines[0]


def test_train_writes_the_trace_file_checkpoint_and_summaries(capsys, tmp_path, shapes, clean_otel_env):
    out = tmp_path / "trace.jsonl"
    code, stdout, err = run_cli(
        capsys, *TRAIN, "--data", shapes, "--epochs", "2", "--trace-every", "3",
        "--out", out, "--save-dir", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    assert stdout == ""  # no console exporter: the trace goes to the file only
    assert "epoch 1/2  loss " in err and "epoch 2/2  loss " in err
    assert f"checkpoint saved to {tmp_path / 'run' / 'weights' / 'last.pt'}" in err
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()
    spans = SpanList.from_readable(read_trace_file(out))
    assert [s.attributes[A.STEP] for s in spans.find("train_step")] == [0, 3]  # 4 steps, every 3rd traced
    for step in spans.find("train_step"):
        step.children.assert_names(["forward", "loss", "backward", "optimizer_step"])
    spans.one("model.init")
    assert len(spans.find("val")) == 2
    (run_id,) = {s.attributes[A.RUN_ID] for s in spans}
    assert f"run {run_id}: 4 steps" in err


def test_the_console_exporter_prints_the_step_trees(capsys, tmp_path, shapes, clean_otel_env):
    code, stdout, err = run_cli(
        capsys, *TRAIN, "--data", shapes, "--epochs", "1", "--trace-every", "2", "--no-val",
        "--save-dir", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert stdout.count("train_step") == 2 and "optimizer_step" in stdout and "model.init" in stdout


def test_the_sampler_always_off_records_nothing(capsys, tmp_path, shapes, clean_otel_env, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    out = tmp_path / "trace.jsonl"
    code, _, err = run_cli(
        capsys, *TRAIN, "--data", shapes, "--epochs", "1", "--no-val", "--out", out, "--save-dir", tmp_path
    )
    assert code == 0, err
    assert read_trace_file(out) == []


def test_the_trace_id_ratio_sampler_keeps_whole_steps(capsys, tmp_path, shapes, clean_otel_env, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    out = tmp_path / "trace.jsonl"
    random.seed(3)  # the SDK draws trace ids from Python's random: a fixed seed, a fixed outcome
    code, _, err = run_cli(
        capsys, *TRAIN, "--batch", "1", "--data", shapes, "--epochs", "1", "--no-val",
        "--out", out, "--save-dir", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    spans = SpanList.from_readable(read_trace_file(out))
    kept = spans.find("train_step")
    assert 0 < len(kept) < 8  # 8 steps offered, about half kept
    for step in kept:
        assert int(step.trace_id, 16) & (2**64 - 1) < 2**63  # the ratio rule on the trace id's low half
        # At batch 1 the warm-up soon accumulates gradients: not every step has an optimizer_step.
        assert [child.name for child in step.children][:3] == ["forward", "loss", "backward"]
    assert len(spans.find("forward", phase="train")) == len(kept)  # no orphans from dropped steps
    assert len(spans.find("loss")) == len(kept)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--data", "{tmp}/missing"), "no such dataset folder"),
        (("--data", "{tmp}", "--cfg", "yolov9"), "yolov9"),
        (("--data", "{tmp}", "--imgsz", "70"), "--imgsz must be a multiple of 32, got 70"),
        (("--data", "{tmp}", "--device", "tpu"), "invalid device 'tpu'"),
        (("--data", "{tmp}", "--exporter", "file"), "--exporter file needs --out PATH"),
        (("--data", "{tmp}/empty"), "no images found"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, shapes, clean_otel_env, argv, message):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    for name in ("images", "labels", "data.yaml"):
        (tmp_path / name).symlink_to(shapes / name)
    args = [arg.format(tmp=tmp_path) for arg in argv]
    code, _, err = run_cli(capsys, *TRAIN, *args, "--epochs", "1", "--save-dir", tmp_path / "run")
    assert code == 2
    assert message in one_line_error(err)


def test_argument_errors_exit_2(capsys, shapes):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(shapes), "--cfg", "yolov5n", "--trace-every", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_data_synth_writes_a_dataset_and_refuses_to_overwrite_it(capsys, tmp_path):
    code, out, _ = run_cli(
        capsys, "data", "synth", tmp_path / "ds", "--images", "3", "--imgsz", "32", "--nc", "2"
    )
    assert code == 0
    assert out.startswith("wrote 3 training and 1 validation images (")
    assert out.endswith(f"2 classes) to {tmp_path / 'ds'}\n")
    assert len(list((tmp_path / "ds" / "images" / "train").glob("*.png"))) == 3
    code, _, err = run_cli(capsys, "data", "synth", tmp_path / "ds")
    assert code == 2 and "already holds images/ or labels/" in one_line_error(err)
