"""Exponential moving average of the weights, as upstream's ``ModelEMA``: what gets validated and saved.

The decay ramps up as ``0.9999 * (1 - exp(-updates / 2000))``, so early updates follow the
model closely and later ones average over thousands of steps. Every floating-point entry of the
state dict (parameters and BatchNorm statistics) is averaged; integer buffers are copied.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Keeps ``ema``, a frozen eval-mode copy of the model, updated after each optimizer step.

    Make it before instrumenting the model: the copy then carries no tracing hooks of its own.
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.ema = copy.deepcopy(model).eval()
        for parameter in self.ema.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    def decay_at(self, updates: int) -> float:
        """The weight of the average at its ``updates``-th update."""
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        self.updates += 1
        weight = 1.0 - self.decay_at(self.updates)
        averaged, current, copied, sources = [], [], [], []
        source = model.state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                averaged.append(value)
                current.append(source[name].detach())
            else:
                copied.append(value)
                sources.append(source[name])
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)
        for target, value in zip(copied, sources, strict=True):
            target.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
