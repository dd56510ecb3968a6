from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from yolospan.train import Hyp, Schedule, accumulation, build_optimizer, lr_factor
from yolospan.yolo.blocks import Conv


def _model():
    return nn.Sequential(Conv(3, 8, kernel=3), nn.Conv2d(8, 4, 1))  # conv+BN (no bias), conv with bias


def test_groups_decay_conv_weights_only():
    model = _model()
    optimizer = build_optimizer(model, Hyp(), batch_size=64)
    weights, norm, biases = optimizer.param_groups
    assert [g["name"] for g in optimizer.param_groups] == ["weights", "norm", "biases"]
    assert {id(p) for p in weights["params"]} == {id(model[0].conv.weight), id(model[1].weight)}
    assert {id(p) for p in norm["params"]} == {id(model[0].bn.weight)}
    assert {id(p) for p in biases["params"]} == {id(model[0].bn.bias), id(model[1].bias)}
    assert (weights["weight_decay"], norm["weight_decay"], biases["weight_decay"]) == (5e-4, 0.0, 0.0)
    assert all(g["nesterov"] and g["momentum"] == 0.937 and g["lr"] == 0.01 for g in optimizer.param_groups)


@pytest.mark.parametrize(
    ("batch", "accumulate", "decay"), [(64, 1, 5e-4), (16, 4, 5e-4), (24, 3, 5e-4 * 72 / 64)]
)
def test_weight_decay_follows_the_images_per_optimizer_step(batch, accumulate, decay):
    assert accumulation(batch) == accumulate
    optimizer = build_optimizer(_model(), Hyp(), batch_size=batch)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(decay)


def test_schedules_fall_from_one_to_lrf():
    linear, cosine = lr_factor(10, 0.01), lr_factor(10, 0.01, cosine=True)
    assert (linear(0), linear(5), linear(10)) == pytest.approx((1.0, 0.505, 0.01))
    assert (cosine(0), cosine(5), cosine(10)) == pytest.approx((1.0, 0.505, 0.01))
    assert cosine(2) == pytest.approx(1 - 0.99 * (1 - math.cos(math.pi / 5)) / 2)


def test_warmup_ramps_lr_momentum_and_accumulation():
    schedule = Schedule(Hyp(), epochs=10, steps_per_epoch=20, batch_size=16)
    assert schedule.warmup_steps == 100  # 3 epochs are 60 steps; upstream warms up for 100 at least
    optimizer = build_optimizer(_model(), Hyp(), batch_size=16)
    schedule.apply(optimizer, 0, epoch=0)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0, 0.1]
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.8)
    schedule.apply(optimizer, 50, epoch=2)
    target = 0.01 * lr_factor(10, 0.01)(2)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [target / 2, target / 2, (0.1 + target) / 2]
    )
    assert optimizer.param_groups[0]["momentum"] == pytest.approx((0.8 + 0.937) / 2)
    schedule.apply(optimizer, 150, epoch=7)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01 * lr_factor(10, 0.01)(7)] * 3)
    assert optimizer.param_groups[2]["momentum"] == 0.937
    assert [schedule.accumulate(step) for step in (0, 50, 100, 101, 500)] == [1, 2, 4, 4, 4]


def test_long_epochs_warm_up_for_three_epochs():
    assert Schedule(Hyp(), epochs=10, steps_per_epoch=200, batch_size=16).warmup_steps == 600


def test_an_sgd_step_moves_the_weights():
    model = _model()
    optimizer = build_optimizer(model, Hyp(), batch_size=64)
    before = model[1].weight.detach().clone()
    model(torch.rand(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model[1].weight)
