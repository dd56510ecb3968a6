"""Real weights for a model: yolospan's training checkpoints and plain state dicts, nothing pickled.

Files are read with ``torch.load(weights_only=True)``, which builds tensors and plain containers
only. Upstream's own ``yolov5s.pt`` pickles the whole model object, and unpickling it would run
code named by the file, so it is refused with a message that says how to export its state dict.
State-dict keys and shapes are upstream's, so a state dict saved from upstream's model loads here
and one saved here loads there.
"""

from __future__ import annotations

import enum
import os
import pickle  # only for its exception type: files are read by torch's weights-only unpickler
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.errors import UserError

__all__ = [
    "CheckpointWeights",
    "LoadedWeights",
    "WeightsError",
    "WeightsFile",
    "load_weights",
    "read_weights",
    "weights_attributes",
]

_CHECKPOINT_KEYS = {"model", "ema", "config"}  # what marks a yolospan training checkpoint


class WeightsError(UserError):
    """A weights file that cannot be read or does not fit the model; the message names the file."""


class CheckpointWeights(str, enum.Enum):
    """Which weights of a training checkpoint to use: the EMA (default, as upstream) or the raw model."""

    EMA = "ema"
    MODEL = "model"

    @classmethod
    def parse(cls, value: CheckpointWeights | str) -> CheckpointWeights:
        try:
            return cls(value)
        except ValueError:
            raise UserError(f"invalid checkpoint weights {value!r}: use ema or model") from None


@dataclass(frozen=True)
class WeightsFile:
    """A weights file as read: its tensors and what the file says about the model they fit."""

    path: str
    source: str  # "ema" or "model" of a yolospan checkpoint, or "state_dict"
    state_dict: dict[str, torch.Tensor]
    nc: int | None  # from a checkpoint's config, else None
    cfg: str | None  # the config a checkpoint was trained from, else None


@dataclass(frozen=True)
class LoadedWeights:
    """What `load_weights` put into a model."""

    path: str
    source: str
    tensors: int

    def describe(self) -> str:
        what = {"ema": "EMA weights of checkpoint", "model": "model weights of checkpoint"}
        return f"{what.get(self.source, 'state dict')} {self.path}"


def read_weights(
    path: str | os.PathLike[str], *, checkpoint_weights: CheckpointWeights | str = CheckpointWeights.EMA
) -> WeightsFile:
    """Read ``path`` safely: a yolospan checkpoint (its ``ema`` or ``model`` entry) or a plain state dict."""
    which = CheckpointWeights.parse(checkpoint_weights)
    label = str(path)
    source = Path(path)
    if not source.is_file():
        raise WeightsError(f"{label}: weights file not found")
    try:
        content: Any = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # the file names Python objects to construct
            raise WeightsError(_pickled_model_message(label)) from None
        raise WeightsError(f"{label}: not a readable weights file (no tensors saved by torch.save)") from None
    except Exception as error:  # a foreign or damaged file fails in many ways inside torch.load
        raise WeightsError(f"{label}: not a readable weights file ({_first_line(error)})") from None
    if not isinstance(content, Mapping):
        raise WeightsError(
            f"{label}: expected a state dict or a yolospan checkpoint, got {type(content).__name__}"
        )
    if content.keys() >= _CHECKPOINT_KEYS:
        config = content["config"] if isinstance(content["config"], Mapping) else {}
        nc = config.get("nc")
        cfg = config.get("cfg")
        return WeightsFile(
            label,
            which.value,
            _tensors(label, content[which.value], f"its {which.value!r} entry"),
            nc if isinstance(nc, int) and not isinstance(nc, bool) else None,
            cfg if isinstance(cfg, str) else None,
        )
    return WeightsFile(label, "state_dict", _tensors(label, content, "the file"), None, None)


def load_weights(model: torch.nn.Module, weights: WeightsFile) -> LoadedWeights:
    """Copy ``weights`` into ``model``: every key must be there with its shape (strict, as a transfer
    that silently skipped layers would trace a model that is neither trained nor random)."""
    own = model.state_dict()
    missing = [key for key in own if key not in weights.state_dict]
    unexpected = [key for key in weights.state_dict if key not in own]
    trained = f" (trained from {weights.cfg})" if weights.cfg else ""
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} key(s) missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise WeightsError(f"{weights.path}: weights do not fit this model{trained}: {'; '.join(parts)}")
    for key, tensor in own.items():
        theirs = weights.state_dict[key]
        if theirs.shape != tensor.shape:
            raise WeightsError(
                f"{weights.path}: weights do not fit this model{trained}: {key} is {list(theirs.shape)} "
                f"in the file but {list(tensor.shape)} in the model (another config, or use --nc?)"
            )
    model.load_state_dict(weights.state_dict, strict=True)
    _refresh_grids(model)
    return LoadedWeights(weights.path, weights.source, len(own))


def weights_attributes(loaded: LoadedWeights | None) -> dict[str, AttributeValue]:
    """The attributes that say which weights a model runs with (random initialisation when None)."""
    if loaded is None:
        return {A.WEIGHTS_SOURCE: "random"}
    return {A.WEIGHTS_SOURCE: loaded.source, A.WEIGHTS_PATH: loaded.path}


def _tensors(label: str, value: object, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping) or not value:
        raise WeightsError(f"{label}: {what} is not a state dict (a mapping of names to tensors)")
    bad = next((key for key, item in value.items() if not isinstance(item, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(f"{label}: {what} is not a state dict: {bad!r} is not a tensor")
    return {str(key): item for key, item in value.items()}


def _refresh_grids(model: torch.nn.Module) -> None:
    """New anchors invalidate the heads' cached decoding grids."""
    for module in model.modules():
        reset = getattr(module, "reset_grids", None)
        if callable(reset):
            reset()


def _pickled_model_message(label: str) -> str:
    return (
        f"{label}: a pickled whole-model checkpoint (upstream's yolov5s.pt format); yolospan does not "
        "unpickle it, as that would run code from the file. Export its state dict with the upstream package "
        '(pip install yolov5): python -c "import torch; from yolov5.models.experimental import attempt_load; '
        f"torch.save(attempt_load('{label}', device='cpu', fuse=False).state_dict(), 'state_dict.pt')\" "
        "and pass --weights state_dict.pt"
    )


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
