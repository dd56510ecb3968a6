"""Achieved FLOP/s of a span that carries FLOPs, and the fraction of the device's peak it reached.

Pure arithmetic over the span's own attributes: ``yolospan.flops``, the device, the input dtype
and the autocast dtype. On the CPU the time is the span's wall-clock duration; on CUDA it must be
the device time (the wall clock there measures kernel launches, not kernels), so callers pass
that and nothing when it is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.tracing import _peaks

__all__ = ["PeakLookup", "rate_attributes", "span_flops", "span_peak", "span_rate_attributes"]

PeakLookup = Callable[[str, str], "float | None"]
"""(``yolospan.device`` value, compute dtype) → dense peak FLOP/s, or None when unknown."""


def rate_attributes(flops: int, seconds: float, peak: float | None) -> dict[str, AttributeValue]:
    """``{achieved_flops_per_s[, peak_flops_per_s, peak_fraction]}``; empty when no time elapsed."""
    if not seconds > 0 or flops < 0:
        return {}
    achieved = flops / seconds
    out: dict[str, AttributeValue] = {A.ACHIEVED_FLOPS_PER_S: achieved}
    if peak is not None and peak > 0:
        out[A.PEAK_FLOPS_PER_S] = peak
        out[A.PEAK_FRACTION] = achieved / peak
    return out


def _allow_tf32() -> bool:
    import torch

    return bool(torch.backends.cudnn.allow_tf32)


def span_rate_attributes(
    attrs: Mapping[str, AttributeValue],
    seconds: float,
    *,
    peak_of: PeakLookup = _peaks.device_peak_flops,
    allow_tf32: Callable[[], bool] = _allow_tf32,
) -> dict[str, AttributeValue]:
    """`rate_attributes` for a span described by ``attrs`` that took ``seconds`` (device or wall time).

    Empty when the span carries no FLOPs (it raised, or FLOPs were not counted).
    """
    flops = span_flops(attrs)
    if flops is None:
        return {}
    return rate_attributes(flops, seconds, span_peak(attrs, peak_of=peak_of, allow_tf32=allow_tf32))


def span_flops(attrs: Mapping[str, AttributeValue]) -> int | None:
    """The FLOPs a span described by ``attrs`` carries, if any."""
    flops = attrs.get(A.FLOPS)
    if not isinstance(flops, int) or isinstance(flops, bool):
        return None
    return flops


def span_peak(
    attrs: Mapping[str, AttributeValue],
    *,
    peak_of: PeakLookup = _peaks.device_peak_flops,
    allow_tf32: Callable[[], bool] = _allow_tf32,
) -> float | None:
    """The dense peak FLOP/s of the device and compute dtype a span described by ``attrs`` ran on."""
    device = attrs.get(A.DEVICE)
    dtype = attrs.get(A.INPUT_DTYPE)
    if not isinstance(device, str) or not isinstance(dtype, str):
        return None
    autocast = attrs.get(A.AUTOCAST)
    device_type = device.partition(":")[0]
    compute = _peaks.compute_dtype(
        dtype,
        autocast if isinstance(autocast, str) else None,
        device_type=device_type,
        allow_tf32=device_type == "cuda" and allow_tf32(),
    )
    return peak_of(device, compute)
