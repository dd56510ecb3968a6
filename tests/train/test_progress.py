from __future__ import annotations

import io

from yolospan.train import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_one_line_per_bar():
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(4, description="epoch 1/2", stream=stream, clock=clock)
    for step in range(4):
        clock.now += 0.5
        bar.update(postfix=f"loss {step}")
    assert stream.getvalue() == ""
    bar.close()
    bar.close()
    assert stream.getvalue() == "epoch 1/2  100% [####################] 4/4  2.0 it/s  loss 3\n"


def test_a_terminal_is_redrawn_in_place_at_most_every_refresh():
    stream, clock = Terminal(), Clock()
    bar = ProgressBar(10, stream=stream, clock=clock, refresh_s=1.0)
    for _ in range(5):
        clock.now += 0.25
        bar.update()
    draws = stream.getvalue().split("\r")[1:]
    assert len(draws) == 2  # at 0.25 s and at 1.25 s
    assert draws[-1].startswith(" 50% [##########..........] 5/10  4.0 it/s")
    bar.close()
    assert stream.getvalue().endswith("\x1b[K\n")


def test_a_broken_stream_does_not_raise():
    stream = io.StringIO()
    stream.close()
    bar = ProgressBar(1, stream=stream)
    bar.update()
    bar.close()
