"""Device time of module calls on an asynchronous device, read without ever blocking the caller.

On CUDA a hook returns long before the kernels it launched have run, so the wall clock in a hook
measures launches. A `Clock` puts a *mark* on the device's work queue instead (for CUDA a
timing event recorded on the current stream, taken from a pool); how long the device spent
between two marks can be read only once the second one has been reached, which is waiting that
the traced thread must never do. A `Resolver` therefore takes (marks, completion) jobs and runs
them on one small daemon worker thread: it waits for each job's marks there, then calls the
job's completion with the elapsed milliseconds (the tracer sets the device time and ends the
spans, with the wall-clock end times it recorded). The traced stream is never synchronized.

The price is a delay: a forward's spans are ended only when the GPU has finished that forward,
so readers call `Resolver.flush` (yolospan's span pipelines do it on ``force_flush`` and
``shutdown``) before they look.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Clock", "CudaClock", "Resolver", "cuda_clock", "default_resolver", "flush"]

_log = logging.getLogger(__name__)


class Clock(Protocol):
    """Marks on a device's work queue and the device time between two of them."""

    def mark(self) -> Any:
        """Put a mark on the queue now; never waits for the device."""
        ...

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds of device time from ``start`` to ``end``; may wait until ``end`` is reached.

        Called on the resolver's worker only.
        """
        ...

    def release(self, mark: Any) -> None:
        """The mark was read and may be reused."""
        ...


class CudaClock:
    """`Clock` of one CUDA device: ``torch.cuda.Event(enable_timing=True)`` from a pool.

    ``new_event`` and ``current_stream`` default to torch's; a test passes its own.
    """

    def __init__(
        self,
        device: Any = None,
        *,
        new_event: Callable[[], Any] | None = None,
        current_stream: Callable[[Any], Any] | None = None,
    ) -> None:
        if new_event is None or current_stream is None:
            import torch

            new_event = new_event or functools.partial(torch.cuda.Event, enable_timing=True)
            current_stream = current_stream or torch.cuda.current_stream
        self.device = device
        self._new_event = new_event
        self._current_stream = current_stream
        self._pool: collections.deque[Any] = collections.deque()  # append/pop are atomic

    def mark(self) -> Any:
        try:
            event = self._pool.pop()
        except IndexError:
            event = self._new_event()
        event.record(self._current_stream(self.device))
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()  # blocks this (worker) thread until the device passed ``end``; not the stream
        return float(start.elapsed_time(end))

    def release(self, mark: Any) -> None:
        self._pool.append(mark)

    @property
    def pooled(self) -> int:
        """Events waiting for reuse."""
        return len(self._pool)


_clocks: dict[str, CudaClock] = {}
_clocks_lock = threading.Lock()


def cuda_clock(device: str) -> CudaClock:
    """The one `CudaClock` of ``device`` (``cuda:0``), so its event pool is shared."""
    clock = _clocks.get(device)
    if clock is None:
        with _clocks_lock:
            clock = _clocks.get(device)
            if clock is None:
                import torch

                clock = _clocks[device] = CudaClock(torch.device(device))
    return clock


Pairs = Sequence[tuple[Any, Any]]
Completion = Callable[[list["float | None"]], None]


class _Job:
    __slots__ = ("clock", "complete", "pairs")

    def __init__(self, clock: Clock, pairs: Pairs, complete: Completion) -> None:
        self.clock = clock
        self.pairs = pairs
        self.complete = complete


class Resolver:
    """Runs jobs on one daemon worker: wait for the marks, call the completion with the times.

    `submit` never waits; `flush` waits until every job submitted before it has completed.
    """

    def __init__(self, name: str = "yolospan-device-time") -> None:
        self._name = name
        self._jobs: collections.deque[_Job | None] = collections.deque()
        self._ready = threading.Condition()
        self._outstanding = 0
        self._thread: threading.Thread | None = None

    def submit(self, clock: Clock, pairs: Pairs, complete: Completion) -> None:
        """Queue one job: ``complete`` gets each pair's device time in ms (None where unreadable)."""
        with self._ready:
            self._outstanding += 1
            self._jobs.append(_Job(clock, pairs, complete))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify_all()

    @property
    def outstanding(self) -> int:
        """Jobs submitted and not yet completed."""
        return self._outstanding

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every job submitted so far has completed; False if ``timeout_s`` ran out first."""
        with self._ready:
            return self._ready.wait_for(lambda: self._outstanding == 0, timeout_s)

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """`flush`, then stop the worker; a later `submit` starts a new one."""
        done = self.flush(timeout_s)
        with self._ready:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.append(None)
                self._ready.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        return done

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._jobs))
                job = self._jobs.popleft()
            if job is None:
                return
            try:
                self._resolve(job)
            finally:
                with self._ready:
                    self._outstanding -= 1
                    self._ready.notify_all()

    @staticmethod
    def _resolve(job: _Job) -> None:
        times: list[float | None] = []
        for start, end in job.pairs:
            if start is None or end is None:  # a mark that could not be recorded
                times.append(None)
                continue
            try:
                times.append(job.clock.elapsed_ms(start, end))
            except Exception:
                _log.warning("yolospan: could not read a device time", exc_info=True)
                times.append(None)
        try:
            job.complete(times)
        except Exception:
            _log.warning("yolospan: could not complete spans with their device time", exc_info=True)
        finally:
            released: set[int] = set()
            for pair in job.pairs:
                for mark in pair:
                    if mark is not None and id(mark) not in released:
                        released.add(id(mark))
                        job.clock.release(mark)


_default = Resolver()


def default_resolver() -> Resolver:
    """The resolver the tracer uses (one worker thread per process, started on first use)."""
    return _default


def flush(timeout_s: float | None = None) -> bool:
    """Wait until every span waiting for its device time has been completed and ended."""
    return _default.flush(timeout_s)
