"""Forked DataLoader workers neither break, duplicate nor lose a run's spans."""

from __future__ import annotations

from yolospan import attributes as A
from yolospan.export.tracefile import read_trace_file
from yolospan.otel import setup_tracing
from yolospan.testing import SpanList
from yolospan.train import TrainConfig, Trainer


def test_a_run_with_forked_workers_exports_each_span_once(tmp_path, shapes, clean_otel_env):
    out = tmp_path / "trace.jsonl"
    config = TrainConfig(
        shapes, cfg="yolov5n", imgsz=64, epochs=2, batch=4, nbs=4, workers=2, multiprocessing_context="fork"
    )
    trainer = Trainer(config)
    with setup_tracing(("file",), out=out) as telemetry:  # a batch processor with its own thread
        result = trainer.fit(tracer_provider=telemetry.tracer_provider)
    assert result.steps == 4
    spans = SpanList.from_readable(read_trace_file(out))
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans) == 6 + 4 * 5 + 2 * 2
    assert [s.attributes[A.STEP] for s in spans.find("train_step")] == [0, 1, 2, 3]
    assert {s.attributes[A.RUN_ID] for s in spans} == {result.run_id}
