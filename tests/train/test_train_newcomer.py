"""`yolospan train` as a new user meets it: refused models, one terminal, one line for a dead collector."""

from __future__ import annotations

import io
import logging
import sys

import torch

from otlp_receiver import free_port
from yolospan.cli import main
from yolospan.otel import setup_tracing
from yolospan.train import tracing as train_tracing


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_segmentation_model_is_refused_before_any_work(capsys, tmp_path, shapes, clean_otel_env):
    out = tmp_path / "t.jsonl"
    code = main(["train", "--data", str(shapes), "--cfg", "yolov5s-seg", "--imgsz", "64", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("yolospan: error: --cfg yolov5s-seg: cannot train a model with a Segment head")
    assert stdout == "" and not out.exists()  # nothing built, nothing written


def test_the_tree_and_the_bar_share_the_terminal_without_writing_over_each_other(
    monkeypatch, tmp_path, four_shapes, clean_otel_env
):
    from test_progress import screen_lines

    terminal = Terminal()  # stdout and stderr are the same terminal, as in a shell
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["train", "--data", str(four_shapes), "--cfg", "yolov5n", "--imgsz", "64", "--batch", "2"]
    code = main([*argv, "--epochs", "1", "--no-val", "--save-dir", str(tmp_path / "run")])
    assert code == 0
    screen = screen_lines(terminal.getvalue())
    bars = [line for line in screen if line.startswith("epoch 1/1:")]
    assert len(bars) == 1 and "2/2" in bars[0]  # the finished bar, left where it was drawn
    tree = [line for line in screen if "train_step" in line or line.startswith(("│", "┌", "└"))]
    assert sum(line.startswith("┌ train_step") for line in tree) == 2
    for line in tree:
        assert "step/s" not in line and "%|" not in line, f"bar and tree on one line: {line!r}"


def test_a_dead_collector_is_one_line_for_traces_and_metrics(monkeypatch, caplog, clean_otel_env, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    telemetry = setup_tracing(["otlp"], metrics=True, spool_dir=tmp_path / "spool")
    assert telemetry.meter_provider is not None
    with (
        caplog.at_level(logging.WARNING),
        telemetry,
        train_tracing.TrainingRun(meter_provider=telemetry.meter_provider) as run,
    ):
        model = run.watch(torch.nn.Conv2d(3, 4, 3))
        with run.step(epoch=0, images=torch.zeros(2, 3, 8, 8)):
            model(torch.zeros(2, 3, 8, 8))
    telemetry.shutdown(timeout_s=30)
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "spooled" in warnings[0] and warnings[0].endswith("; metrics were not delivered either")
