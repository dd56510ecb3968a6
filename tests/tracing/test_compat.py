"""The support matrix of docs/compat.md, row by row: compilers, wrappers and execution modes.

Compile tests use tiny modules and the "eager" backend (dynamo's tracing, no code generation), so
they take seconds; what is checked is yolospan's part: graphs without breaks, spans around.
"""

from __future__ import annotations

import copy
import logging
import warnings

import pytest
import torch
from torch import nn

import yolospan
from yolospan import attributes as A


class Small(nn.Module):
    """A model class of the user's own, as YOLO's is."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.SiLU()
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


X = (1, 3, 8, 8)
FLOPS = 2 * (3 * 9 * 4 * 64 + 4 * 2 * 64)  # the two convolutions; SiLU and biases cost nothing here


def layer_names(spans) -> list[str]:
    return [s.name for s in spans if s.name != "forward"]


@pytest.mark.parametrize("fullgraph", [False, True], ids=["default", "fullgraph"])
def test_compile_of_an_instrumented_model_runs_without_graph_breaks(spans, fullgraph):
    torch._dynamo.reset()
    model = Small().eval()
    x = torch.randn(X)
    expected = model(x)
    with yolospan.instrument(model, layers=True):
        compiled = torch.compile(model, backend="eager", fullgraph=fullgraph)
        torch.testing.assert_close(compiled(x), expected)
        explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0
    assert explained.graph_count == 1
    assert list(spans) == []  # yolospan steps aside inside the compiled region


@pytest.mark.parametrize("fullgraph", [False, True], ids=["default", "fullgraph"])
def test_instrumenting_the_compiled_model_gives_a_span_around_each_compiled_call(spans, fullgraph):
    torch._dynamo.reset()
    model = Small().eval()
    x = torch.randn(X)
    compiled = torch.compile(model, backend="eager", fullgraph=fullgraph)
    with yolospan.instrument(compiled, layers=True):
        compiled(x)
        compiled(x)
    forwards = spans.find("forward")
    assert len(forwards) == 2
    assert forwards[0].attributes[A.INPUT_SHAPE] == list(X)
    assert all(s.parent is None for s in forwards)
    assert layer_names(spans) == []  # the layers run inside the graph
    assert all(A.FLOPS not in s.attributes for s in forwards)  # no count rather than a wrong one
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jit_script_of_an_instrumented_model_works_and_the_script_is_not_traced(spans):
    model = Small().eval()
    x = torch.randn(X)
    with yolospan.instrument(model, layers=True):
        scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(x), model(x))
    assert len(spans.find("forward")) == 1  # the original's call only
    assert len(layer_names(spans)) == 3


def test_jit_trace_of_an_instrumented_model_records_nothing_while_tracing(spans, caplog):
    model = Small().eval()
    x = torch.randn(X)
    with yolospan.instrument(model, layers=True), caplog.at_level(logging.WARNING):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, x, check_trace=False)  # the check reruns it eagerly
        assert list(spans) == []  # yolospan steps aside while torch traces
        torch.testing.assert_close(traced(x), model(x))
    assert caplog.records == []  # no SDK warning about attribute values
    assert len(spans.find("forward")) == 1  # the original's call; the traced module is not traced
    assert spans.one("forward").attributes[A.FLOPS] == FLOPS


@pytest.mark.parametrize("wrapped", [False, True], ids=["inner-instrumented", "wrapper-instrumented"])
def test_data_parallel_gives_one_forward_span_per_call(spans, wrapped):
    model = Small().eval()
    parallel = nn.DataParallel(model)  # on the CPU it calls the module itself
    with yolospan.instrument(parallel if wrapped else model):
        parallel(torch.randn(X))
        parallel(torch.randn(X))
    forwards = spans.find("forward")
    assert len(forwards) == 2
    assert all(s.attributes[A.FLOPS] == FLOPS for s in forwards)


def test_inference_mode_forwards_are_traced_and_counted(spans):
    model = Small().eval()
    with yolospan.instrument(model, layers=True), torch.inference_mode():
        model(torch.randn(X))
    forward = spans.one("forward")
    assert forward.attributes[A.FLOPS] == FLOPS
    assert layer_names(spans) == ["Conv2d", "SiLU", "Conv2d"]


def test_autocast_forwards_record_the_autocast_dtype_and_the_same_flops(spans):
    model = Small().eval()
    with yolospan.instrument(model, layers=True), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(X))
    forward = spans.one("forward")
    assert forward.attributes[A.AUTOCAST] == "bfloat16"
    assert forward.attributes[A.FLOPS] == FLOPS
    assert all(s.attributes[A.AUTOCAST] == "bfloat16" for s in spans)


def test_channels_last_models_record_logical_shapes_and_the_same_flops(spans):
    model = copy.deepcopy(Small()).eval().to(memory_format=torch.channels_last)
    x = torch.randn(X).to(memory_format=torch.channels_last)
    with yolospan.instrument(model, layers=True):
        model(x)
    forward = spans.one("forward")
    assert forward.attributes[A.INPUT_SHAPE] == list(X)
    assert forward.attributes[A.output_shape_key(0)] == [1, 2, 8, 8]
    assert forward.attributes[A.FLOPS] == FLOPS


def _ddp_rank(rank: int, store: str, out: str) -> None:
    """One rank of a 2-process DistributedDataParallel run on the CPU (gloo over loopback)."""
    import json
    import os

    import torch.distributed as dist

    from yolospan.testing import SpanRecorder

    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = Small()
        with SpanRecorder() as spans, yolospan.instrument(model, layers=True):
            parallel = nn.parallel.DistributedDataParallel(model)
            for _ in range(2):
                parallel(torch.randn(X)).sum().backward()
        forwards = spans.find("forward")
        result = {
            "forwards": len(forwards),
            "roots": sum(s.parent is None for s in forwards),
            "flops": [s.attributes[A.FLOPS] for s in forwards],
            "layers": len([s for s in spans if s.name != "forward"]),
        }
        with open(f"{out}.{rank}", "w") as file:
            json.dump(result, file)
    finally:
        dist.destroy_process_group()


def test_distributed_data_parallel_gives_one_forward_span_per_call_and_rank(tmp_path):
    import json

    import torch.multiprocessing as mp

    out = str(tmp_path / "rank")
    mp.spawn(_ddp_rank, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank.{rank}").read_text())
        assert result == {"forwards": 2, "roots": 2, "flops": [FLOPS, FLOPS], "layers": 6}
