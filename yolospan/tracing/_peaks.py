"""Dense peak FLOP/s of known GPUs, per compute dtype, for the fraction of peak a span achieved.

The table holds only figures printed in NVIDIA's public datasheets (the one per row is named in
its comment). Datasheets of Hopper, Ampere and Ada tensor cores print the figure *with
sparsity* (2:4 structured sparsity, which a dense convolution never uses); the dense peak is
half of it and that half is what the table holds. A device that is not in the table, a MIG
slice, or a board whose streaming-multiprocessor count differs from the datasheet part has no
peak: the fraction attribute is then absent, never estimated.

``YOLOSPAN_PEAK_FLOPS`` overrides the table for CUDA devices: one number (FLOP/s, for every
dtype) or ``dtype=number`` pairs separated by commas, e.g. ``bfloat16=989e12,float32=67e12``
(dtypes ``float32``, ``tf32``, ``float16``, ``bfloat16``; the dtypes not named keep the table's
figure). A malformed value is logged once and gives no peak at all.

float32 on CUDA runs convolutions on TF32 tensor cores while ``torch.backends.cudnn.allow_tf32``
is on (PyTorch's default), so its peak is the TF32 one then; on GPUs without TF32 units (T4,
V100) the table's TF32 figure is the float32 one.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DTYPES",
    "ENV_PEAK_FLOPS",
    "GpuPeaks",
    "PeakOverrideError",
    "compute_dtype",
    "lookup",
    "parse_override",
    "peak_flops",
]

_log = logging.getLogger(__name__)

ENV_PEAK_FLOPS = "YOLOSPAN_PEAK_FLOPS"
"""Environment variable that overrides the table for CUDA devices."""

DTYPES = ("float32", "tf32", "float16", "bfloat16")
"""The compute dtypes a peak is given for."""

T = 1e12


@dataclass(frozen=True)
class GpuPeaks:
    """One GPU's dense peaks in FLOP/s (None: the datasheet gives no dense figure for that dtype)."""

    name: str
    sms: int  # streaming multiprocessors of the datasheet part: a MIG slice or cut-down board differs
    float32: float | None
    tf32: float | None
    float16: float | None
    bfloat16: float | None

    def for_dtype(self, dtype: str) -> float | None:
        return {
            "float32": self.float32,
            "tf32": self.tf32,
            "float16": self.float16,
            "bfloat16": self.bfloat16,
        }.get(dtype)


# fmt: off
_TABLE: dict[str, GpuPeaks] = {g.name: g for g in (
    # "NVIDIA H200 Tensor Core GPU" datasheet, H200 SXM: FP32 67 TF; TF32 989, BF16/FP16 1,979 TF sparse.
    GpuPeaks("H200 SXM", 132, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T),
    # "NVIDIA H100 Tensor Core GPU" datasheet, H100 SXM: FP32 67 TF; TF32 989, BF16/FP16 1,979 TF sparse.
    GpuPeaks("H100 SXM", 132, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T),
    # Same datasheet, H100 PCIe: FP32 51 TF; TF32 756, BF16/FP16 1,513 TF sparse.
    GpuPeaks("H100 PCIe", 114, 51 * T, 378 * T, 756.5 * T, 756.5 * T),
    # "NVIDIA A100 Tensor Core GPU" datasheet (40/80 GB, PCIe and SXM alike): FP32 19.5;
    # TF32 156, BF16/FP16 312 TF dense.
    GpuPeaks("A100", 108, 19.5 * T, 156 * T, 312 * T, 312 * T),
    # "NVIDIA L40S" datasheet: FP32 91.6; TF32 183, BF16/FP16 362.05 TF dense.
    GpuPeaks("L40S", 142, 91.6 * T, 183 * T, 362.05 * T, 362.05 * T),
    # "NVIDIA L4 Tensor Core GPU" datasheet: FP32 30.3; TF32 120, BF16/FP16 242 TF with sparsity.
    GpuPeaks("L4", 58, 30.3 * T, 60 * T, 121 * T, 121 * T),
    # "NVIDIA A10 Tensor Core GPU" datasheet: FP32 31.2; TF32 62.5, BF16/FP16 125 TF dense.
    GpuPeaks("A10", 72, 31.2 * T, 62.5 * T, 125 * T, 125 * T),
    # "NVIDIA T4 Tensor Core GPU" datasheet: FP32 8.1 TF; mixed precision (FP16/FP32) 65 TF.
    # No TF32, no BF16 units.
    GpuPeaks("T4", 40, 8.1 * T, 8.1 * T, 65 * T, None),
    # "NVIDIA V100 Tensor Core GPU" datasheet, V100 for NVLink (SXM2): FP32 15.7, tensor 125 TF.
    # No TF32, no BF16 units.
    GpuPeaks("V100 SXM2", 80, 15.7 * T, 15.7 * T, 125 * T, None),
    # Same datasheet, V100 for PCIe: FP32 14, tensor 112 TF.
    GpuPeaks("V100 PCIe", 80, 14 * T, 14 * T, 112 * T, None),
    # Same datasheet, V100S for PCIe: FP32 16.4, tensor 130 TF.
    GpuPeaks("V100S PCIe", 80, 16.4 * T, 16.4 * T, 130 * T, None),
    # "NVIDIA RTX 6000 Ada Generation" datasheet: FP32 91.1 TF; its one tensor figure is FP8 with sparsity.
    GpuPeaks("RTX 6000 Ada", 142, 91.1 * T, None, None, None),
    # "NVIDIA RTX A6000" datasheet: FP32 38.7 TF; its one tensor figure is with sparsity, dtype unnamed.
    GpuPeaks("RTX A6000", 84, 38.7 * T, None, None, None),
)}
# fmt: on


def _tokens(device_name: str) -> set[str]:
    """``NVIDIA A100-SXM4-40GB`` → ``{"NVIDIA", "A100", "SXM4", "40GB"}``: whole words only."""
    return set(re.split(r"[\s\-_/()]+", device_name.upper())) - {""}


def _match(device_name: str) -> GpuPeaks | None:
    """The table row for a ``torch.cuda.get_device_name()`` string, matched on whole words.

    Whole words keep A10 from matching A100 or A10G, L4 from L40/L40S, H200 from GH200, and the
    H100 PCIe and NVL boards from the SXM one.
    """
    words = _tokens(device_name)
    if "MIG" in words:  # a slice of a GPU has a fraction of its units
        return None
    if "H200" in words:
        return None if "NVL" in words else _TABLE["H200 SXM"]
    if "H100" in words:
        if "PCIE" in words:
            return _TABLE["H100 PCIe"]
        if "NVL" in words:
            return None
        if words & {"SXM", "SXM5", "HBM3"}:  # the SXM part reports itself as "H100 80GB HBM3"
            return _TABLE["H100 SXM"]
        return None
    if "V100S" in words:
        return _TABLE["V100S PCIe"]
    if "V100" in words:
        if "SXM2" in words:
            return _TABLE["V100 SXM2"]
        if "PCIE" in words:
            return _TABLE["V100 PCIe"]
        return None
    if "RTX" in words and "6000" in words and "ADA" in words:
        return _TABLE["RTX 6000 Ada"]
    if "RTX" in words and "A6000" in words:
        return _TABLE["RTX A6000"]
    for name in ("A100", "L40S", "L4", "A10", "T4"):
        if name in words:
            return _TABLE[name]
    return None


def lookup(device_name: str, sms: int | None = None) -> GpuPeaks | None:
    """The datasheet peaks of the GPU ``torch.cuda.get_device_name()`` calls ``device_name``.

    With ``sms`` (the device's multiprocessor count) a board that has a different count from the
    datasheet part (a MIG slice, a cut-down variant) is unknown too.
    """
    row = _match(device_name)
    if row is None or (sms is not None and sms != row.sms):
        return None
    return row


class PeakOverrideError(ValueError):
    """``YOLOSPAN_PEAK_FLOPS`` could not be read."""


def parse_override(text: str) -> dict[str, float]:
    """``"989e12"`` → every dtype at 989e12; ``"bfloat16=989e12,float32=67e12"`` → those two."""
    text = text.strip()
    if "=" not in text:
        return dict.fromkeys(DTYPES, _positive(text, ENV_PEAK_FLOPS))
    found: dict[str, float] = {}
    for item in text.split(","):
        dtype, sep, value = (part.strip() for part in item.partition("="))
        if not sep or dtype not in DTYPES:
            raise PeakOverrideError(
                f"{ENV_PEAK_FLOPS}: {item.strip()!r} is not dtype=FLOP/s "
                f"with dtype one of {', '.join(DTYPES)}"
            )
        found[dtype] = _positive(value, f"{ENV_PEAK_FLOPS} {dtype}")
    return found


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PeakOverrideError(f"{what}: {text!r} is not a number of FLOP/s") from None
    if not value > 0 or value == float("inf"):
        raise PeakOverrideError(f"{what}: {text!r} is not a positive, finite number of FLOP/s")
    return value


@functools.lru_cache(maxsize=8)
def _override(text: str) -> Mapping[str, float] | None:
    """The parsed override, or None (logged once per distinct value) when it is malformed."""
    try:
        return parse_override(text)
    except PeakOverrideError as error:
        _log.warning("yolospan: %s; no peak FLOP/s is used", error)
        return None


def compute_dtype(dtype: str, autocast: str | None, *, device_type: str, allow_tf32: bool) -> str:
    """The dtype a call's arithmetic runs in: autocast's if on, TF32 for float32 on CUDA if allowed."""
    effective = autocast or dtype
    if effective == "float32" and device_type == "cuda" and allow_tf32:
        return "tf32"
    return effective


def peak_flops(
    device_name: str | None, dtype: str, *, sms: int | None = None, env: str | None = None
) -> float | None:
    """Dense peak FLOP/s of a CUDA device for compute ``dtype`` (see `compute_dtype`), or None.

    ``env`` is the value of ``YOLOSPAN_PEAK_FLOPS`` (None when unset); it takes precedence for the
    dtypes it names. ``device_name`` None means a device that is not a CUDA GPU: no peak.
    """
    if device_name is None:
        return None
    if env is not None and env.strip():
        override = _override(env)
        if override is None:
            return None
        if dtype in override:
            return override[dtype]
    row = lookup(device_name, sms)
    return None if row is None else row.for_dtype(dtype)


@functools.lru_cache(maxsize=16)
def _cuda_identity(index: int) -> tuple[str, int] | None:
    try:
        import torch

        props = torch.cuda.get_device_properties(index)
    except Exception:
        _log.debug("yolospan: no properties for cuda:%d", index, exc_info=True)
        return None
    return str(props.name), int(props.multi_processor_count)


def device_peak_flops(device: str, dtype: str) -> float | None:
    """`peak_flops` for a span's ``yolospan.device`` (``cuda:0``) and compute dtype; None off CUDA."""
    if not device.startswith("cuda"):
        return None
    _, _, index = device.partition(":")
    identity = _cuda_identity(int(index) if index.isdigit() else 0)
    if identity is None:
        return None
    name, sms = identity
    return peak_flops(name, dtype, sms=sms, env=os.environ.get(ENV_PEAK_FLOPS))
