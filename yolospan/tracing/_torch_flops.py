"""FLOPs by PyTorch's own ``FlopCounterMode``, counted beside thop's in the same first forward.

thop charges per module type from shapes (BatchNorm, upsampling and activations included);
``torch.utils.flop_counter.FlopCounterMode`` charges the aten operators it has formulas for
(convolutions and matrix products) as they are dispatched. Counting both in the forward that
thop already counts in (the first of each call signature) costs no extra forward, and puts the
two on the span: ``yolospan.flops`` (thop) and ``yolospan.flops.torch``.

A dispatch mode is per thread, so the counter is too: the outermost counting call of a thread
enters one ``FlopCounterMode``, every counting call inside it (layers) reads the running total
when it starts and when it ends, and the outermost call's end leaves the mode.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A

__all__ = ["METHODS", "flop_methods", "parse_methods", "record", "start", "stop", "wanted"]

_log = logging.getLogger(__name__)

METHODS: Final = ("thop", "torch")
"""FLOPs counting methods: thop's per-module rules (always) and PyTorch's FlopCounterMode."""

_methods: ContextVar[tuple[str, ...]] = ContextVar("yolospan_flop_methods", default=("thop",))


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """``"thop,torch"`` or ``("thop", "torch")`` validated; thop is always among the result."""
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    chosen = tuple(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
    unknown = [name for name in chosen if name not in METHODS]
    if unknown or not chosen:
        what = f"unknown FLOPs method {unknown[0]!r}" if unknown else "no FLOPs method given"
        raise ValueError(f"{what}; choose from {', '.join(METHODS)} (e.g. thop,torch)")
    return ("thop", *(name for name in chosen if name != "thop"))


@contextmanager
def flop_methods(methods: str | Sequence[str]) -> Iterator[tuple[str, ...]]:
    """Instrumentations made inside this block without ``flops=`` count with ``methods``."""
    token = _methods.set(parse_methods(methods))
    try:
        yield _methods.get()
    finally:
        _methods.reset(token)


def wanted(methods: str | Sequence[str] | None) -> bool:
    """Whether torch's count is asked for: by ``methods``, or else by the enclosing `flop_methods`."""
    chosen = _methods.get() if methods is None else parse_methods(methods)
    return "torch" in chosen


class _Counter(threading.local):
    def __init__(self) -> None:
        self.mode: object | None = None
        self.starts: dict[int, int] = {}


_counter = _Counter()


def _total(mode: object) -> int:
    return int(mode.get_total_flops())  # type: ignore[attr-defined]


def start(call: object) -> None:
    """``call`` starts counting: enter the thread's FlopCounterMode if none is active, note its total."""
    try:
        if _counter.mode is None:
            from torch.utils.flop_counter import FlopCounterMode

            mode = FlopCounterMode(display=False)
            mode.__enter__()  # type: ignore[no-untyped-call]
            _counter.mode = mode
        _counter.starts[id(call)] = _total(_counter.mode)
    except Exception:  # counting must never break the model's forward
        _log.warning("yolospan: could not start torch's FLOPs counter", exc_info=True)


def stop(call: object) -> int | None:
    """FLOPs torch counted since ``call`` started (None if it did not); the last one out leaves the mode."""
    begun = _counter.starts.pop(id(call), None)
    mode = _counter.mode
    if begun is None or mode is None:
        return None
    count = _total(mode) - begun
    if not _counter.starts:
        _counter.mode = None
        try:
            mode.__exit__(None, None, None)  # type: ignore[attr-defined]
        except Exception:
            _log.warning("yolospan: could not stop torch's FLOPs counter", exc_info=True)
    return count


def record(
    count: int | None, attrs: MutableMapping[str, AttributeValue], cached: MutableMapping[str, AttributeValue]
) -> None:
    """Put torch's count on the span and in the signature's cached attributes (later calls reuse it)."""
    if count is not None:
        attrs[A.FLOPS_TORCH] = cached[A.FLOPS_TORCH] = count
