from __future__ import annotations

import os

import torch
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from torch.utils.data import Dataset

import yolospan
from yolospan.data import Sample, create_loader
from yolospan.export.tracefile import TraceFileExporter, read_trace_file
from yolospan.tracing import use_tracer_provider


class TracingDataset(Dataset[Sample]):
    """A dataset whose items run traced code, as a user's preprocessing model might."""

    def __init__(self) -> None:
        self.module = torch.nn.Identity()

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Sample:
        with yolospan.span("load", attributes={"pid": os.getpid()}), yolospan.instrument(self.module):
            self.module(torch.zeros(1))
        labels = torch.tensor([[index % 2, 0.5, 0.5, 0.2, 0.2]])
        return Sample(torch.full((3, 4, 4), index, dtype=torch.uint8), labels, f"item{index}")


def _file_provider(path):
    provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(TraceFileExporter(path)))
    return provider


def test_batches_from_forked_workers_are_complete_and_ordered(tmp_path):
    loader = create_loader(
        TracingDataset(), batch_size=4, shuffle=False, workers=2, multiprocessing_context="fork"
    )
    batches = list(loader)
    assert [b.paths for b in batches] == [
        ("item0", "item1", "item2", "item3"),
        ("item4", "item5", "item6", "item7"),
    ]
    assert batches[1].targets[:, :2].tolist() == [[0, 0], [1, 1], [2, 0], [3, 1]]


def test_forked_workers_emit_no_spans(tmp_path):
    path = tmp_path / "trace.jsonl"
    provider = _file_provider(path)
    with use_tracer_provider(provider):
        with yolospan.span("parent"):
            pass
        loader = create_loader(
            TracingDataset(), batch_size=4, shuffle=False, workers=2, multiprocessing_context="fork"
        )
        assert len(list(loader)) == 2
        with yolospan.span("after"):
            pass
    provider.shutdown()
    assert [span.name for span in read_trace_file(path)] == ["parent", "after"]


def test_in_the_main_process_the_same_dataset_is_traced(tmp_path):
    path = tmp_path / "trace.jsonl"
    provider = _file_provider(path)
    with use_tracer_provider(provider):
        assert len(list(create_loader(TracingDataset(), batch_size=4, workers=0))) == 2
    provider.shutdown()
    spans = read_trace_file(path)
    assert [span.name for span in spans].count("load") == 8
    assert {span.attributes["pid"] for span in spans if span.name == "load"} == {os.getpid()}


def test_shuffling_follows_the_seed():
    def order(seed):
        loader = create_loader(TracingDataset(), batch_size=8, seed=seed)
        return [batch.paths for batch in loader]

    assert order(1) == order(1)
    assert order(1) != order(2)
