"""A small progress bar for the terminal (no dependency): one line per epoch, redrawn in place.

On a terminal the line is redrawn at most ``refresh_s`` apart; on anything else (a log file, a
CI console) only the finished line is written, so logs hold one line per epoch, not thousands.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 20


class ProgressBar:
    """``bar.update(postfix="loss 0.12")`` once per step, `close` at the end of the epoch."""

    def __init__(
        self,
        total: int,
        *,
        description: str = "",
        stream: TextIO | None = None,
        refresh_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.postfix = ""
        self._refresh_s = refresh_s
        self._clock = clock
        self._start = clock()
        self._drawn_at: float | None = None
        self._live = _is_terminal(self.stream)
        self._closed = False

    def update(self, steps: int = 1, *, postfix: str | None = None) -> None:
        self.count += steps
        if postfix is not None:
            self.postfix = postfix
        if not self._live:
            return
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= self._refresh_s or self.count >= self.total:
            self._drawn_at = now
            self._write("\r" + self.render(now) + "\x1b[K")

    def close(self) -> None:
        """Write the final line (and the newline after it); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._write(
            ("\r" if self._live else "") + self.render(self._clock()) + ("\x1b[K\n" if self._live else "\n")
        )

    def render(self, now: float | None = None) -> str:
        """The line as it would be drawn at ``now``: description, bar, count, rate, postfix."""
        elapsed = max((now if now is not None else self._clock()) - self._start, 0.0)
        fraction = min(self.count / self.total, 1.0) if self.total else 1.0
        filled = round(fraction * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        rate = f"{self.count / elapsed:.1f} it/s" if elapsed > 0 and self.count else "- it/s"
        parts = [self.description, f"{fraction:4.0%} [{bar}] {self.count}/{self.total}", rate, self.postfix]
        return "  ".join(part for part in parts if part)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop training
            self._live = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
