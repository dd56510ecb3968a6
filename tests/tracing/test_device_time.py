"""Device-time bookkeeping on the CPU: a fake clock whose marks complete only when the test says so."""

from __future__ import annotations

import logging
import threading

import pytest
import torch

from yolospan.tracing._device_time import CudaClock, Resolver

WAIT = 10.0  # seconds; only ever reached when the code under test is broken


class GatedClock:
    """Marks are numbers; ``elapsed_ms`` waits until the test opens the gate, as a GPU still busy would."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.next = 0
        self.read_on: list[str] = []
        self.released: list[int] = []
        self.broken: set[int] = set()

    def mark(self) -> int:
        self.next += 1
        return self.next

    def elapsed_ms(self, start: int, end: int) -> float:
        self.read_on.append(threading.current_thread().name)
        if not self.gate.wait(WAIT):
            raise AssertionError("the gate was never opened")
        if end in self.broken:
            raise RuntimeError("event not recorded")
        return float(end - start)

    def release(self, mark: int) -> None:
        self.released.append(mark)


@pytest.fixture
def resolver():
    resolver = Resolver(name="test-device-time")
    yield resolver
    resolver.shutdown(WAIT)


def test_submitting_never_waits_for_the_device_and_flush_does(resolver):
    clock = GatedClock()
    done: list[list[float | None]] = []
    a, b, c = clock.mark(), clock.mark(), clock.mark()
    resolver.submit(clock, [(a, c), (a, b)], done.append)  # returns with the gate shut
    assert done == [] and resolver.outstanding == 1
    assert resolver.flush(timeout_s=0.01) is False  # the device has not got there: nothing completed
    assert done == []
    clock.gate.set()
    assert resolver.flush(timeout_s=WAIT) is True
    assert done == [[2.0, 1.0]] and resolver.outstanding == 0
    assert set(clock.read_on) == {"test-device-time"}  # read on the worker, never on the caller
    assert sorted(clock.released) == [a, b, c]  # each mark handed back once


def test_jobs_complete_in_submission_order(resolver):
    clock = GatedClock()
    order: list[str] = []
    for name in ("first", "second", "third"):
        start, end = clock.mark(), clock.mark()
        resolver.submit(clock, [(start, end)], lambda times, name=name: order.append(name))
    clock.gate.set()
    assert resolver.flush(WAIT)
    assert order == ["first", "second", "third"]


def test_an_unreadable_time_is_none_and_the_job_still_completes(resolver, caplog):
    clock = GatedClock()
    clock.gate.set()
    a, b, c = clock.mark(), clock.mark(), clock.mark()
    clock.broken.add(b)
    done: list[list[float | None]] = []
    with caplog.at_level(logging.WARNING):
        resolver.submit(clock, [(a, b), (a, c)], done.append)
        assert resolver.flush(WAIT)
    assert done == [[None, 2.0]]
    assert "could not read a device time" in caplog.text


def test_a_failing_completion_is_logged_and_later_jobs_still_run(resolver, caplog):
    clock = GatedClock()
    clock.gate.set()
    done: list[list[float | None]] = []

    def broken(times: list[float | None]) -> None:
        raise ValueError("span already ended")

    with caplog.at_level(logging.WARNING):
        resolver.submit(clock, [(clock.mark(), clock.mark())], broken)
        resolver.submit(clock, [(clock.mark(), clock.mark())], done.append)
        assert resolver.flush(WAIT)
    assert done == [[1.0]]
    assert "could not complete spans with their device time" in caplog.text
    assert len(clock.released) == 4


def test_shutdown_waits_for_pending_jobs_then_a_new_submit_starts_a_new_worker(resolver):
    clock = GatedClock()
    done: list[list[float | None]] = []
    resolver.submit(clock, [(clock.mark(), clock.mark())], done.append)
    opener = threading.Timer(0.05, clock.gate.set)
    opener.start()
    assert resolver.shutdown(WAIT) is True
    assert done == [[1.0]]
    assert not any(t.name == "test-device-time" for t in threading.enumerate())
    resolver.submit(clock, [(clock.mark(), clock.mark())], done.append)
    assert resolver.flush(WAIT)
    assert done == [[1.0], [1.0]]


def test_flush_with_nothing_submitted_returns_at_once(resolver):
    assert resolver.flush(timeout_s=0) is True
    assert resolver.shutdown(timeout_s=0) is True


class FakeEvent:
    made = 0

    def __init__(self) -> None:
        FakeEvent.made += 1
        self.recorded_on: list[object] = []
        self.synchronized = 0

    def record(self, stream: object) -> None:
        self.recorded_on.append(stream)

    def synchronize(self) -> None:
        self.synchronized += 1

    def elapsed_time(self, end: FakeEvent) -> float:
        assert end.synchronized, "elapsed_time read before the end event completed"
        return 1.5


def test_the_cuda_clock_records_on_the_devices_current_stream_and_reuses_events():
    FakeEvent.made = 0
    streams = []

    def current_stream(device: object) -> str:
        streams.append(device)
        return f"stream of {device}"

    clock = CudaClock("cuda:1", new_event=FakeEvent, current_stream=current_stream)
    start, end = clock.mark(), clock.mark()
    assert start.recorded_on == ["stream of cuda:1"] and streams == ["cuda:1", "cuda:1"]
    assert clock.elapsed_ms(start, end) == 1.5
    clock.release(start)
    clock.release(end)
    assert clock.pooled == 2
    again = clock.mark()
    assert again is end and FakeEvent.made == 2  # from the pool, not a new event
    assert again.recorded_on == ["stream of cuda:1", "stream of cuda:1"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_real_cuda_clock_times_a_matmul_without_blocking_the_stream(resolver):
    clock = CudaClock(torch.device("cuda:0"))
    x = torch.randn(2048, 2048, device="cuda:0")
    start = clock.mark()
    for _ in range(10):
        x = x @ x.T / 2048
    end = clock.mark()
    done: list[list[float | None]] = []
    resolver.submit(clock, [(start, end)], done.append)
    assert resolver.flush(WAIT)
    (elapsed,) = done[0]
    assert elapsed is not None and elapsed > 0
    assert clock.pooled == 2


def test_a_pair_with_a_missing_mark_has_no_time_and_nothing_is_waited_for(resolver):
    clock = GatedClock()  # gate shut: reading a real pair would wait
    done: list[list[float | None]] = []
    resolver.submit(clock, [(None, clock.mark()), (clock.mark(), None)], done.append)
    assert resolver.flush(WAIT)
    assert done == [[None, None]] and clock.read_on == []
    assert sorted(clock.released) == [1, 2]  # the real marks go back to the pool, None does not
