"""The learned hook path: later forwards of a call signature follow the layer calls the first one made.

On the hook path (``layers=True`` on a module that does not time its own layers) every layer call
runs through its slot. A described layer call computes its input attributes, looks up its
signature, counts or reuses FLOPs, adds output attributes and rates, and keeps a frame for the
forward to turn into a span: about twice the work of a convolution's bookkeeping in torch, on
every layer of every forward. Most forwards of one signature make the same layer calls with the
same attributes, so after a described forward whose layers all ran directly in it and returned,
that forward's layer calls are kept in call order as a `Script` (each with the `_clock._Learned`
span it gives). A later recorded forward of the signature on the CPU is *followed*: each layer
call is checked against the script's next call — the same layer, not inside another layer, the
same input shapes, dtypes, device and train/eval mode (kwargs and several inputs: the whole call
signature) — and only its clock is noted; its span comes from the script, its rates from its own
times, as on the native clock (`_clock.emit`).

Anything else ends the following for the rest of that forward (the *deviation*): the call and
those after it are described as before, the script is dropped, and the next forward describes
and learns again (up to `MAX_MISSES` times per signature: a model whose layer calls change with
its state, e.g. a cache, stays on the described path). A followed call whose outputs differ in
shape or dtype from the script's (an output whose size depends on the data) gets its own output
attributes (`Follower.odd`). A layer that raises ends its span with its own exception, as a
described call would.

What it gives up: a layer that the model calls inside a followed layer (for the first time in
that forward's signature) is parented to the forward rather than to the followed layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import time_ns
from typing import Any

from torch import Tensor, nn

from yolospan.tracing import _attrs
from yolospan.tracing._clock import _Learned, learned_layer

__all__ = ["DEVIATED", "MAX_MISSES", "Follower", "Script", "learn"]

MAX_MISSES = 3
"""Per call signature: after this many forwards that could not be learned or followed, stop trying."""

DEVIATED: Any = object()
"""What `Follower.step` returns for a call that the script does not foresee."""


class _Entry:
    """One layer call of a script: what the call must look like, and the span it gives."""

    __slots__ = (
        "device",
        "dtype",
        "gave",
        "key",
        "learned",
        "shape",
        "single",
        "target",
        "training",
    )

    def __init__(self, frame: Any, learned: _Learned) -> None:
        self.target = frame.target
        self.learned = learned
        self.key = frame.key  # the call signature (`_attrs.signature`)
        self.single = frame.single  # one positional tensor and nothing else: checked field by field
        self.training, self.device = self.key[0], self.key[1] if len(self.key) > 1 else None
        self.shape: Any = None
        self.dtype: Any = None
        if self.single:
            self.shape, self.dtype = self.key[3]
        self.gave: _attrs.OutputSignature = frame.gave  # what it returned


class Script:
    """A call signature's layer calls, in the order its described forward made them."""

    __slots__ = ("entries", "learned")

    def __init__(self, entries: tuple[_Entry, ...]) -> None:
        self.entries = entries
        self.learned = tuple(entry.learned for entry in entries)

    def follower(self) -> Follower:
        return Follower(self)


def learn(frames: Sequence[Any], extra: Any, phase: str | None) -> Script | None:
    """The script of a described forward's layer frames (in the order they ended), or None where
    one of them raised, was not described, or ran inside another layer."""
    entries: list[_Entry] = []
    for frame in frames:
        learned = learned_layer(frame, extra, phase)
        if learned is None or frame.key is None or frame.gave is None:
            return None
        entries.append(_Entry(frame, learned))
    return Script(tuple(entries))


class Follower:
    """One recorded forward following its signature's `Script`: the clock of each call it foresaw."""

    __slots__ = ("cursor", "deviated", "entries", "failed", "inside", "odd", "script", "ticks")

    def __init__(self, script: Script) -> None:
        self.script = script
        self.entries = script.entries
        self.cursor = 0  # the next entry
        self.ticks = [0] * (2 * len(script.entries))  # start and end of each entry, as `LayerClock`
        self.inside = False  # while a followed call runs
        self.deviated = False
        self.failed: dict[int, BaseException] | None = None  # entry → what it raised
        self.odd: list[tuple[int, _attrs.Attributes]] = []  # entry → its own output attributes

    def step(self, target: Any, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the layer call if it is the next one foreseen (its output), else `DEVIATED`."""
        index = self.cursor
        if self.inside or index >= len(self.entries):
            return self._deviate()
        entry = self.entries[index]
        if entry.target is not target:
            return self._deviate()
        if entry.single:
            if kwargs or len(args) != 1:
                return self._deviate()
            x = args[0]
            if (
                type(x) is not Tensor
                or x.shape != entry.shape
                or x.dtype is not entry.dtype
                or module.training is not entry.training
                or x.device != entry.device
            ):
                return self._deviate()
        elif _attrs.signature(_attrs.tensors_in(args, kwargs), module.training) != entry.key:
            return self._deviate()
        self.cursor = index + 1
        ticks = self.ticks
        self.inside = True
        ticks[2 * index] = time_ns()
        try:
            output = target.call(module, args, kwargs)
        except BaseException as error:
            ticks[2 * index + 1] = time_ns()
            self.inside = False
            if self.failed is None:
                self.failed = {}
            self.failed[index] = error
            raise
        ticks[2 * index + 1] = time_ns()
        self.inside = False
        if entry.gave.matches(output):
            return output
        own: _attrs.Attributes = {}
        _attrs.add_output_attributes(own, output)
        self.odd.append((index, own))
        return output

    def _deviate(self) -> Any:
        self.deviated = True
        return DEVIATED
