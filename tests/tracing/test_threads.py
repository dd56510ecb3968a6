"""Threads: FLOPs stay exact on a shared model, and routing follows the OpenTelemetry context."""

from __future__ import annotations

import contextvars
import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from opentelemetry import context as otel_context
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.testing import SpanRecorder

THREADS = 8
ROUNDS = 20


def tiny() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.SiLU(),
        nn.Sequential(nn.Conv2d(8, 4, 1), nn.Upsample(scale_factor=2)),
    )


def shape(round_: int) -> tuple[int, int, int, int]:
    return (1 + round_ % 2, 3, 4 + 2 * round_, 6 + round_)  # a new shape in every round


def reference_flops(model: nn.Module) -> dict[tuple[int, ...], dict[str, int]]:
    """FLOPs per shape, for the forward and each layer, counted on one thread on a copy."""
    expected: dict[tuple[int, ...], dict[str, int]] = {}
    clone = copy.deepcopy(model)
    with SpanRecorder() as recorded, yolospan.instrument(clone, layers=True):
        for round_ in range(ROUNDS):
            recorded.clear()
            clone(torch.zeros(shape(round_)))
            expected[shape(round_)] = {s.name: s.attributes[A.FLOPS] for s in recorded}
    return expected


def test_flops_are_exact_when_threads_share_a_model(spans):
    model = tiny().eval()
    expected = reference_flops(model)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for round_ in range(ROUNDS):
                barrier.wait()  # every thread runs the first forward of the round's shape at once
                with yolospan.span_attributes({"test.thread": thread, "test.round": round_}):
                    model(torch.zeros(shape(round_)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            barrier.abort()

    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    forwards = {s.span_id: s for s in spans.find("forward")}
    assert len(forwards) == THREADS * ROUNDS
    layers = [s for s in spans if s.name != "forward"]
    assert len(layers) == 4 * THREADS * ROUNDS
    for forward in forwards.values():
        size = shape(forward.attributes["test.round"])
        assert forward.attributes[A.INPUT_SHAPE] == list(size)
        assert forward.attributes[A.FLOPS] == expected[size]["forward"], forward.attributes
    for layer in layers:  # each layer under its own forward, with that forward's exact FLOPs
        parent = forwards[layer.parent.span_id]
        assert layer.attributes["test.thread"] == parent.attributes["test.thread"]
        assert layer.attributes["test.round"] == parent.attributes["test.round"]
        size = shape(parent.attributes["test.round"])
        assert layer.attributes[A.FLOPS] == expected[size][layer.name]
    for forward in forwards.values():
        assert sum(layer.parent.span_id == forward.span_id for layer in layers) == 4


def forward_on(run) -> None:
    model = nn.Linear(2, 2)
    with yolospan.instrument(model):
        run(lambda: model(torch.zeros(1, 2)))


def in_thread(target) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def test_a_context_carried_into_a_thread_carries_the_recorder_phase_and_attributes():
    # What OpenTelemetry's threading instrumentation does for Thread and ThreadPoolExecutor:
    # capture the current context in the parent and attach it in the child.
    with (
        SpanRecorder() as recorder,
        yolospan.phase("train"),
        yolospan.span_attributes({"run.id": "r1"}),
    ):
        captured = otel_context.get_current()

        def carried(call):
            def child():
                token = otel_context.attach(captured)
                try:
                    call()
                finally:
                    otel_context.detach(token)

            in_thread(child)

        forward_on(carried)
    forward = recorder.one("forward")
    assert forward.attributes[A.PHASE] == "train"
    assert forward.attributes["run.id"] == "r1"
    assert forward.parent.span_id == recorder.one("train").span_id


def test_copy_context_run_in_an_executor_carries_the_recorder():
    with SpanRecorder() as recorder, ThreadPoolExecutor(2) as pool:
        forward_on(lambda call: pool.submit(contextvars.copy_context().run, call).result())
    assert len(recorder.find("forward")) == 1


def test_a_thread_started_without_the_context_goes_to_the_global_provider():
    # The rule stated in docs/compat.md: a bare Thread or ThreadPoolExecutor starts from an empty
    # context, as for any OpenTelemetry span, so yolospan's spans there go to the global provider.
    with SpanRecorder() as recorder, ThreadPoolExecutor(2) as pool:
        forward_on(lambda call: pool.submit(call).result())
        forward_on(in_thread)
    assert list(recorder) == []
