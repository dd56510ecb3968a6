"""What the table of upstream numbers holds and how a model's outputs are summarised for it.

Imported both by the tests (with yolospan) and by ``measure_upstream.py`` (in a separate
environment with only torch and the upstream ``yolov5`` package), so it needs nothing but torch.

Outputs are compared through fixed, synthetic weights: every state-dict tensor is filled from a
generator seeded by its key (`synthetic_state_dict`), so the same weights are made for upstream's
model and for yolospan's without storing them; the outputs on a fixed input are then summarised by
`digest`, whose sums (one of them weighted by a fixed pattern) change when any output changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

TABLE_PATH = Path(__file__).with_name("upstream_numbers.json")
PROBE_BATCH = 2  # training-mode BatchNorm needs more than one value per channel
PROBE_SIZE = 128  # a multiple of every shipped config's largest stride (128 for yolov5-p7)


def load_table() -> dict[str, Any]:
    return json.loads(TABLE_PATH.read_text())  # type: ignore[no-any-return]


def fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of every state-dict key with its shape, in order: equal fingerprints, portable weights."""
    text = "\n".join(f"{key}:{list(value.shape)}" for key, value in state.items())
    return hashlib.sha256(text.encode()).hexdigest()


def synthetic_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with every float tensor but the anchors refilled, seeded by its key.

    Conv and linear weights get variance 1/fan_in, BatchNorm scales 0.5-1 and variances 0.5-1.5,
    biases and means ±0.1: the outputs stay in a sane range through every shipped config.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not value.is_floating_point() or key.endswith("anchors"):
            out[key] = value.clone()
            continue
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        unit = torch.rand(value.shape, generator=generator, dtype=torch.float64)
        if key.endswith("running_var"):
            low, high = 0.5, 1.5
        elif value.dim() == 1 and key.endswith("weight"):
            low, high = 0.5, 1.0
        elif value.dim() == 1:
            low, high = -0.1, 0.1
        else:
            bound = math.sqrt(3 / (value[0].numel() if value.dim() > 1 else 1))
            low, high = -bound, bound
        out[key] = (low + (high - low) * unit).to(value.dtype)
    return out


def probe_images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(PROBE_BATCH, 3, PROBE_SIZE, PROBE_SIZE, generator=generator)


def digest(output: Any) -> list[dict[str, Any]]:
    """Per output tensor (in nesting order): shape, sum, sum of magnitudes and a weighted sum."""
    rows = []
    for tensor in _tensors(output):
        flat = tensor.detach().double().flatten()
        pattern = torch.cos(torch.arange(flat.numel(), dtype=torch.float64) * 0.7)
        rows.append(
            {
                "shape": list(tensor.shape),
                "sum": float(flat.sum()),
                "abs_sum": float(flat.abs().sum()),
                "weighted_sum": float((flat * pattern).sum()),
            }
        )
    return rows


def digest_mismatch(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], rtol: float = 1e-5
) -> str | None:
    """None when the digests agree (sums within ``rtol`` of the magnitudes), else what differs."""
    if [row["shape"] for row in ours] != [row["shape"] for row in theirs]:
        return f"output shapes {[r['shape'] for r in ours]} != {[r['shape'] for r in theirs]}"
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        scale = max(b["abs_sum"], 1.0)
        for field in ("sum", "abs_sum", "weighted_sum"):
            if abs(a[field] - b[field]) > rtol * scale:
                return f"output {index} {field}: {a[field]!r} != {b[field]!r}"
    return None


def _tensors(output: Any) -> Iterator[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _tensors(item)
