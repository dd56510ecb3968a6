"""The training progress bar, drawn by tqdm, and the way other output shares the terminal with it.

On a terminal, tqdm keeps one bar per epoch on the bottom line; anything else that writes to the
terminal while it is drawn must clear it first and redraw it after, or the two write over each
other. `above_progress` wraps a stream so that each line written to it goes through
``tqdm.write``, which does exactly that: the live span tree (`yolospan.export.console`, one
line per write) scrolls above the bar. tqdm rather than rich: the tree is plain lines with its
own colours, which ``tqdm.write`` prints unchanged, while rich would re-render them through its
own console.

On anything else (a log file, a CI console) there is no bar to redraw: a plain progress line is
written every ``interval_s`` (10 s) and when the epoch ends, so a log shows the run moving
without holding thousands of redraws.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from typing import Never

__all__ = ["PLAIN_INTERVAL_S", "ProgressBar", "above_progress"]

PLAIN_INTERVAL_S = 10.0
"""Seconds between two plain progress lines when the stream is not a terminal."""


class ProgressBar:
    """``bar.update(postfix="loss 0.12")`` once per step, `close` at the end of the epoch."""

    def __init__(
        self,
        total: int,
        *,
        description: str = "",
        stream: TextIO | None = None,
        interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.postfix = ""
        self._interval_s = interval_s
        self._clock = clock
        self._start = clock()
        self._written_at = self._start
        self._closed = False
        self._bar: tqdm[Never] | None = None  # a bar without an iterable
        if _is_terminal(self.stream):
            resizable = _reports_width(self.stream)  # a terminal of unknown size (a bare pty) gets 80
            self._bar = tqdm(
                total=total,
                desc=description,
                file=self.stream,
                unit="step",
                leave=True,
                dynamic_ncols=resizable,
                ncols=None if resizable else 80,
                mininterval=0.1,
            )

    @property
    def live(self) -> bool:
        """Whether tqdm draws the bar in place (the stream is a terminal)."""
        return self._bar is not None

    def update(self, steps: int = 1, *, postfix: str | None = None) -> None:
        self.count += steps
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(steps)
            return
        now = self._clock()
        if now - self._written_at >= self._interval_s and self.count < self.total:
            self._written_at = now
            self._write(self.render(now) + "\n")

    def close(self) -> None:
        """Leave the finished bar (or write the final plain line); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._write(self.render(self._clock()) + "\n")

    def render(self, now: float | None = None) -> str:
        """The plain line at ``now``: description, percentage, bar, count, times, rate, postfix."""
        elapsed = max((now if now is not None else self._clock()) - self._start, 0.0)
        return str(
            tqdm.format_meter(
                self.count,
                self.total,
                elapsed,
                prefix=self.description,
                postfix=self.postfix or None,
                unit="step",
                ascii=True,
            )
        )

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop training
            self._closed = True


class _AboveProgress:
    """A text stream whose complete lines are printed with ``tqdm.write``: above any live bar."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    @property
    def encoding(self) -> str | None:
        return getattr(self._stream, "encoding", None)

    def isatty(self) -> bool:
        return _is_terminal(self._stream)

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            tqdm.write(line, file=self._stream)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def above_progress(stream: TextIO) -> TextIO:
    """``stream`` for writers that print whole lines (the span tree), kept clear of the progress bar."""
    return _AboveProgress(stream)  # type: ignore[return-value]  # the part of TextIO that is used


def _reports_width(stream: TextIO) -> bool:
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        return False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
