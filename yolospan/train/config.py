"""Training hyperparameters: upstream YOLOv5's ``hyp.scratch-low.yaml`` values (augmentation aside)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NOMINAL_BATCH_SIZE", "Hyp", "LossGains", "scaled_gains"]

NOMINAL_BATCH_SIZE = 64
"""Upstream's ``nbs``: gradients are accumulated to about 64 images per optimizer step."""


@dataclass(frozen=True)
class Hyp:
    """Optimisation and loss settings; the defaults are upstream's for training from scratch.

    Change one with `dataclasses.replace`: ``replace(Hyp(), lr0=0.02)``.
    """

    lr0: float = 0.01
    """Initial learning rate (SGD)."""
    lrf: float = 0.01
    """Final learning rate as a fraction of ``lr0``."""
    momentum: float = 0.937
    """SGD momentum (nesterov)."""
    weight_decay: float = 5e-4
    """L2 on conv weights, at the nominal batch size of 64 images."""
    warmup_epochs: float = 3.0
    """Warm-up length in epochs; at least ``warmup_min_steps`` steps."""
    warmup_min_steps: int = 100
    """Upstream warms up for at least 100 iterations, however short the epochs."""
    warmup_momentum: float = 0.8
    """Momentum at the start of the warm-up."""
    warmup_bias_lr: float = 0.1
    """Learning rate of the biases at the start of the warm-up (it falls to ``lr0``)."""
    box: float = 0.05
    """Box loss gain, before the scaling of `scaled_gains`."""
    cls: float = 0.5
    """Class loss gain, before scaling."""
    obj: float = 1.0
    """Objectness loss gain, before scaling."""
    cls_pw: float = 1.0
    """Positive weight of the class BCE."""
    obj_pw: float = 1.0
    """Positive weight of the objectness BCE."""
    anchor_t: float = 4.0
    """A target matches an anchor when neither side ratio exceeds this."""
    max_grad_norm: float = 10.0
    """Gradients are clipped to this total norm before the optimizer step."""


@dataclass(frozen=True)
class LossGains:
    """The loss gains after upstream's scaling to the model and image size."""

    box: float
    obj: float
    cls: float


def scaled_gains(hyp: Hyp, *, nl: int, nc: int, imgsz: int) -> LossGains:
    """Upstream's scaling: box by 3/nl, cls by nc/80 and 3/nl, obj by (imgsz/640)² and 3/nl."""
    levels = 3 / nl
    return LossGains(
        box=hyp.box * levels,
        obj=hyp.obj * (imgsz / 640) ** 2 * levels,
        cls=hyp.cls * nc / 80 * levels,
    )
