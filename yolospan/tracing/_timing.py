"""What the tracer adds to a finished call: its achieved FLOP/s, and on CUDA its device time.

The tracer (`yolospan.tracing._instrument`) calls these at two points only: when a recorded
forward starts (`clock_for`: a device clock for a CUDA forward, None elsewhere) and when it
ends, either at once with the wall-clock time (`wall_rates`, on the CPU, with the device's
`peak` looked up once per call signature) or later on the resolver's worker with the device
time (`device_attributes`). The tracer keeps these measured numbers beside the span's
attributes; nothing here creates or ends spans.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.tracing import _device_time
from yolospan.tracing._device_time import Clock
from yolospan.tracing._throughput import rate_attributes, span_peak, span_rate_attributes

__all__ = [
    "clock_for",
    "device_attributes",
    "flush",
    "mark",
    "peak",
    "resolver",
    "wall_rates",
]

_log = logging.getLogger(__name__)


def clock_for(attrs: Mapping[str, AttributeValue]) -> Clock | None:
    """The device clock for a call described by ``attrs``: a CUDA call's, None for any other device."""
    device = attrs.get(A.DEVICE)
    if isinstance(device, str) and device.startswith("cuda"):
        return _device_time.cuda_clock(device)
    return None


def mark(clock: Clock) -> Any:
    """``clock.mark()``, or None (logged) if the device refuses: tracing never breaks a forward."""
    try:
        return clock.mark()
    except Exception:
        _log.warning("yolospan: could not record a device-time mark", exc_info=True)
        return None


def resolver() -> _device_time.Resolver:
    """Where the tracer submits the device-time jobs of its CUDA forwards."""
    return _device_time.default_resolver()


def flush(timeout_s: float | None = None) -> bool:
    """Wait until every span waiting for its device time has been completed and ended."""
    return resolver().flush(timeout_s)


def peak(attrs: Mapping[str, AttributeValue]) -> float | None:
    """The peak FLOP/s of the device a call described by ``attrs`` ran on (constant per call signature)."""
    return span_peak(attrs)


def wall_rates(flops: int, start_ns: int, end_ns: int, peak: float | None) -> dict[str, AttributeValue]:
    """Achieved FLOP/s of a call timed by the wall clock (the CPU: the clock measures the work)."""
    return rate_attributes(flops, (end_ns - start_ns) / 1e9, peak)


def device_attributes(
    attrs: Mapping[str, AttributeValue], elapsed_ms: float | None
) -> dict[str, AttributeValue]:
    """The device time and achieved FLOP/s of a call timed on the device; nothing if unreadable."""
    if elapsed_ms is None:
        return {}
    return {A.DEVICE_TIME_MS: elapsed_ms, **span_rate_attributes(attrs, elapsed_ms / 1e3)}
