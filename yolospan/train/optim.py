"""SGD as upstream YOLOv5 sets it up: three parameter groups, warm-up, and a per-epoch lr schedule.

Weight decay applies to conv (and linear) weights only, never to normalisation weights or
biases, and is scaled to the number of images per optimizer step (gradients are accumulated to
about 64 images). For the first ``max(3 epochs, 100 steps)`` the learning rates ramp linearly
(biases down from 0.1, the others up from 0) together with the momentum (0.8 → 0.937) and the
accumulation (1 → 64 / batch); afterwards the rate follows a linear or cosine schedule per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from yolospan.train.config import NOMINAL_BATCH_SIZE, Hyp

__all__ = [
    "GROUP_BIASES",
    "GROUP_NORM",
    "GROUP_WEIGHTS",
    "Schedule",
    "accumulation",
    "build_optimizer",
    "lr_factor",
]

GROUP_WEIGHTS = "weights"
"""Conv/linear weights: decayed."""
GROUP_NORM = "norm"
"""Normalisation-layer weights: not decayed."""
GROUP_BIASES = "biases"
"""All biases (conv, head and normalisation): not decayed; warmed up from ``warmup_bias_lr``."""


def accumulation(batch_size: int, nbs: int = NOMINAL_BATCH_SIZE) -> int:
    """Batches per optimizer step after warm-up: ``max(round(nbs / batch_size), 1)``."""
    return max(round(nbs / batch_size), 1)


def build_optimizer(
    model: nn.Module, hyp: Hyp, *, batch_size: int, nbs: int = NOMINAL_BATCH_SIZE
) -> torch.optim.SGD:
    """Nesterov SGD with groups ``weights`` (decayed), ``norm`` and ``biases`` in that order.

    Each group's ``"name"`` entry says which it is. The decay is ``hyp.weight_decay`` scaled by
    ``batch_size * accumulation / nbs``, the images one optimizer step sees over 64.
    """
    weights: list[nn.Parameter] = []
    norm: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    norm_types = tuple(
        value for name, value in vars(nn).items() if "Norm" in name and isinstance(value, type)
    )
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            (norm if isinstance(module, norm_types) else weights).append(weight)
    decay = hyp.weight_decay * batch_size * accumulation(batch_size, nbs) / nbs
    optimizer = torch.optim.SGD(
        [
            {"params": weights, "weight_decay": decay, "name": GROUP_WEIGHTS},
            {"params": norm, "weight_decay": 0.0, "name": GROUP_NORM},
            {"params": biases, "weight_decay": 0.0, "name": GROUP_BIASES},
        ],
        lr=hyp.lr0,
        momentum=hyp.momentum,
        nesterov=True,
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = hyp.lr0
    return optimizer


def lr_factor(epochs: int, lrf: float, *, cosine: bool = False) -> Callable[[float], float]:
    """Upstream's schedule: ``lr0 * factor(epoch)`` falls from 1 to ``lrf`` linearly or as a half cosine."""
    if cosine:
        return lambda epoch: ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda epoch: (1 - epoch / epochs) * (1.0 - lrf) + lrf


@dataclass
class Schedule:
    """Learning rate, momentum and accumulation for each step; `apply` sets them on the optimizer."""

    hyp: Hyp
    epochs: int
    steps_per_epoch: int
    batch_size: int
    nbs: int = NOMINAL_BATCH_SIZE
    cosine: bool = False

    def __post_init__(self) -> None:
        self.factor = lr_factor(self.epochs, self.hyp.lrf, cosine=self.cosine)
        self.warmup_steps = max(
            round(self.hyp.warmup_epochs * self.steps_per_epoch), self.hyp.warmup_min_steps
        )

    def in_warmup(self, step: int) -> bool:
        return step <= self.warmup_steps

    def accumulate(self, step: int) -> int:
        """Batches per optimizer step at global ``step``: 1 at the start, ramping to nbs/batch."""
        if not self.in_warmup(step):
            return accumulation(self.batch_size, self.nbs)
        ramp = np.interp(step, [0, self.warmup_steps], [1, self.nbs / self.batch_size])
        return max(1, round(float(ramp)))

    def apply(self, optimizer: torch.optim.Optimizer, step: int, epoch: int) -> None:
        """Set each group's ``lr`` and ``momentum`` for global ``step`` of ``epoch``."""
        target = self.hyp.lr0 * self.factor(epoch)
        warm = self.in_warmup(step)
        span = [0, self.warmup_steps]
        for group in optimizer.param_groups:
            if warm:
                start = self.hyp.warmup_bias_lr if group.get("name") == GROUP_BIASES else 0.0
                group["lr"] = float(np.interp(step, span, [start, target]))
                momentum = float(np.interp(step, span, [self.hyp.warmup_momentum, self.hyp.momentum]))
            else:
                group["lr"] = target
                momentum = self.hyp.momentum
            if "momentum" in group:
                group["momentum"] = momentum
