from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from yolospan.train import ModelEMA


def test_the_decay_ramps_up_as_upstream():
    ema = ModelEMA(nn.Linear(2, 2))
    assert ema.decay_at(0) == 0
    assert ema.decay_at(2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert ema.decay_at(100_000) == pytest.approx(0.9999, rel=1e-6)


def test_updates_move_the_average_towards_the_model_and_copy_integer_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model)
    start = ema.ema[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.rand(4, 2))  # one BatchNorm update: running stats and num_batches_tracked change
    ema.update(model)
    weight = 1 - ema.decay_at(1)
    torch.testing.assert_close(ema.ema[0].weight, start + weight * 1.0)
    torch.testing.assert_close(ema.ema[1].running_mean, weight * model[1].running_mean)
    assert ema.ema[1].num_batches_tracked.item() == 1
    assert ema.updates == 1


def test_the_copy_is_frozen_and_in_eval_mode():
    ema = ModelEMA(nn.Linear(2, 2).train())
    assert not ema.ema.training
    assert not any(p.requires_grad for p in ema.ema.parameters())


def test_state_round_trips():
    model = nn.Linear(2, 2)
    ema = ModelEMA(model)
    ema.update(model)
    other = ModelEMA(nn.Linear(2, 2))
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.ema.weight, ema.ema.weight)
