"""Per-epoch checkpoints: ``last.pt`` with state dicts, never pickled modules.

State dicts (not whole modules as upstream saves them) keep checkpoints loadable without this
package's classes on the path and free of anything attached to a live model, such as tracing
hooks. The file is written next to its destination and renamed over it, so an interrupted save
never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from yolospan.errors import UserError

__all__ = ["CHECKPOINT_KEYS", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_KEYS = ("epoch", "run_id", "model", "ema", "ema_updates", "optimizer", "config")
"""What every checkpoint holds; ``config`` says how to rebuild the model (cfg, nc, imgsz...)."""


class CheckpointError(UserError):
    """A checkpoint that cannot be written or read."""


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    epoch: int,
    run_id: str,
    model: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor],
    ema_updates: int,
    optimizer: Mapping[str, Any],
    config: Mapping[str, Any],
) -> Path:
    """Write the checkpoint atomically; returns its path."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    content = {
        "epoch": epoch,
        "run_id": run_id,
        "model": dict(model),
        "ema": dict(ema),
        "ema_updates": ema_updates,
        "optimizer": dict(optimizer),
        "config": dict(config),
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(content, partial)
        os.replace(partial, target)
    except OSError as error:
        raise CheckpointError(f"{target}: cannot write the checkpoint ({error.strerror or error})") from None
    return target


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain Python only)."""
    source = Path(path)
    try:
        content: Any = torch.load(source, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no such checkpoint") from None
    except Exception as error:  # a foreign or damaged file fails in many ways inside the unpickler
        raise CheckpointError(f"{source}: not a readable checkpoint ({str(error).splitlines()[0]})") from None
    if not isinstance(content, dict) or not set(CHECKPOINT_KEYS) <= content.keys():
        raise CheckpointError(
            f"{source}: not a yolospan checkpoint (expected keys {', '.join(CHECKPOINT_KEYS)})"
        )
    return content
