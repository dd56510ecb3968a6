"""``yolospan trace --weights``: a checkpoint from ``yolospan train`` traced with its EMA weights."""

from __future__ import annotations

import pytest
import torch

import yolospan
from yolospan import attributes as A
from yolospan.cli import main
from yolospan.export.tracefile import read_trace_file
from yolospan.testing import SpanList
from yolospan.yolo import build_model


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def last_pt(tmp_path_factory):
    """yolov5n trained for one epoch on ``yolospan data synth``: its ``last.pt``."""
    root = tmp_path_factory.mktemp("weights")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(["data", "synth", str(root / "data"), "--images", "4", "--val-images", "0", "--imgsz", "64"])
            == 0
        )
        code = main(
            [
                "train", "--cfg", "yolov5n", "--data", str(root / "data"), "--imgsz", "64", "--batch", "4",
                "--epochs", "1", "--no-val", "--save-dir", str(root / "run"), "--exporter", "file",
                "--out", str(root / "train.jsonl"),
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return root / "run" / "weights" / "last.pt"


def test_trace_loads_the_checkpoints_ema_and_says_so(capsys, tmp_path, last_pt, clean_otel_env):
    out = tmp_path / "trace.jsonl"
    code, _, err = run_cli(
        capsys,
        "trace",
        "yolov5n",
        "--weights",
        last_pt,
        "--amp-check",
        "on",
        "--exporter",
        "file",
        "--out",
        out,
    )
    assert code == 0, err
    spans = SpanList.from_readable(read_trace_file(out))
    init = spans.one(A.SPAN_MODEL_INIT, model_weights_source="ema", model_weights_path=str(last_pt))
    assert init.attributes[A.MODEL_NC] == 3  # the checkpoint's classes, not the config's 80
    amp = spans.one(A.SPAN_AMP_CHECK, model_weights_source="ema", model_weights_path=str(last_pt))
    assert amp.attributes[A.AMP_RESULT] in ("passed", "failed")  # it ran, on the trained weights


def test_the_loaded_weights_are_the_checkpoints_ema(last_pt):
    checkpoint = torch.load(last_pt, weights_only=True)
    created = yolospan.create_model("yolov5n", weights=last_pt, amp_check="off")
    ema = build_model("yolov5n", nc=3)
    ema.load_state_dict(checkpoint["ema"])
    torch.manual_seed(0)  # the training run's seed: the weights it started from
    fresh = build_model("yolov5n", nc=3)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loaded = created.model.eval()(image)[0]
        assert torch.equal(loaded, ema.eval()(image)[0])
        assert not torch.allclose(loaded, fresh.eval()(image)[0], atol=1e-3)
    raw = yolospan.create_model("yolov5n", weights=last_pt, checkpoint_weights="model", amp_check="off")
    assert raw.weights is not None and raw.weights.source == "model"
    ours, theirs = raw.model.state_dict(), created.model.state_dict()
    assert all(torch.equal(ours[key], value) for key, value in checkpoint["model"].items())
    assert any(not torch.equal(ours[key], theirs[key]) for key in ours)  # EMA and raw weights differ


def test_bad_weights_exit_2_with_one_line(capsys, tmp_path, clean_otel_env):
    pickled = tmp_path / "yolov5s.pt"
    torch.save({"model": torch.nn.Linear(1, 1)}, pickled)
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--weights", pickled)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"yolospan: error: {pickled}: a pickled whole-model checkpoint")
    code, _, err = run_cli(capsys, "trace", "yolov5n", "--weights", tmp_path / "missing.pt")
    assert code == 2
    assert err.strip() == f"yolospan: error: {tmp_path / 'missing.pt'}: weights file not found"
