"""The progress bar shares the terminal with the span tree; a log gets a plain line at an interval."""

from __future__ import annotations

import io
import re

from yolospan.train import ProgressBar
from yolospan.train.progress import above_progress

_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows for ``raw``, line by line: a carriage return goes back to column 0 and
    what follows overwrites; colour and clear-to-end sequences are dropped, trailing blanks too."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for part in re.split(r"(\r|\n)", _ESCAPE.sub("", raw)):
        if part == "\r":
            column = 0
        elif part == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        else:
            line[column : column + len(part)] = list(part)
            column += len(part)
    if line:
        lines.append("".join(line).rstrip())
    return lines


def test_tree_lines_scroll_above_a_bar_that_stays_at_the_bottom():
    terminal = Terminal()
    tree = above_progress(terminal)  # what `yolospan train` hands the console span tree
    bar = ProgressBar(3, description="epoch 1/1", stream=terminal)
    assert bar.live
    for step in range(3):
        tree.write(f"┌ train_step {step}\n")
        tree.write(f"└ train_step {step}  12.0 ms\n")
        bar.update(postfix=f"box 0.0{step}")
    screen = screen_lines(terminal.getvalue())
    tree_lines = [line for line in screen if "train_step" in line]
    assert tree_lines == [
        text for step in range(3) for text in (f"┌ train_step {step}", f"└ train_step {step}  12.0 ms")
    ]  # whole lines: no bar text before or after any of them
    assert screen[-1].startswith("epoch 1/1:") and "2/3" in screen[-1]
    bar.close()
    final = screen_lines(terminal.getvalue())
    assert final[-1].startswith("epoch 1/1: 100%") and "3/3" in final[-1] and "box 0.02" in final[-1]
    assert all("train_step" not in line or line in tree_lines for line in final)


def test_without_a_terminal_a_plain_line_comes_at_a_steady_interval():
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(100, description="epoch 1/2", stream=stream, clock=clock, interval_s=10.0)
    assert not bar.live
    for step in range(100):
        clock.now += 0.5  # 50 s in all: a line at 10, 20, 30 and 40 s, then the final one
        bar.update(postfix=f"loss {step}")
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split("|")[0] for line in lines] == [
        "epoch 1/2:  20%",
        "epoch 1/2:  40%",
        "epoch 1/2:  60%",
        "epoch 1/2:  80%",
        "epoch 1/2: 100%",
    ]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert lines[-1].endswith("loss 99]") and "100/100" in lines[-1]


def test_a_broken_stream_does_not_raise():
    stream = io.StringIO()
    stream.close()
    bar = ProgressBar(1, stream=stream)
    bar.update()
    bar.close()
