"""SIGTERM handled like Ctrl-C: what the command line does, and what a program may ask for.

SLURM, Kubernetes and ``timeout`` stop a job with SIGTERM. Python's default is to die at once,
which loses the spans still queued for export and leaves a trace file whose ``train_step`` parents
were never written. `sigterm_as_interrupt` turns the signal into a `Terminated` exception (a
`KeyboardInterrupt`), so everything that unwinds on Ctrl-C unwinds on SIGTERM too: open spans end
(marked ERROR by `yolospan.span`), the telemetry shuts down within its bound (flushing to the
file, spooling what a collector did not take) and the CLI exits 143 (128 + SIGTERM).

Library code never installs a signal handler on its own: the CLI's entry point calls this, and
a program that wants the same behaviour asks for it the same way::

    with sigterm_as_interrupt():
        train_and_trace()
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_TERMINATED", "Terminated", "sigterm_as_interrupt"]

EXIT_TERMINATED = 128 + signal.SIGTERM
"""The exit status of a run stopped by SIGTERM (143), as a shell reports a process killed by it."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives inside `sigterm_as_interrupt`."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, the first SIGTERM raises `Terminated`; later ones are ignored while the
    run shuts down (that shutdown is bounded). The previous handler is restored afterwards.
    Does nothing outside the main thread, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: the rest would cut the flush
        raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
