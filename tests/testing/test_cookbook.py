"""The recipes of docs/testing.md, run on the tiny stand-in model so they cannot rot."""

from __future__ import annotations

import torch
from torch import nn

from yolospan import attributes as A
from yolospan.tracing import span


def test_the_seed_table(spans, init_tiny):
    init_tiny()
    spans.one("model.init").children.assert_names(["stride_probe", "info_profile", "amp_check"])
    spans.one("forward", phase="stride_probe", input_shape=[1, 3, 32, 32])
    spans.one("forward", phase="info_profile", input_shape=[1, 3, 16, 16])
    spans.one("amp_check", amp_result="passed")  # fake_init's check runs unless amp=False
    spans.assert_count(2, "forward", phase="amp_check", input_shape=[1, 3, 24, 16])  # fp32, then autocast


def test_the_seed_table_when_the_amp_check_is_skipped(spans, init_tiny):
    init_tiny(amp=False)
    spans.check(
        "model.init == 1",
        "forward[phase=stride_probe, input.shape=1x3x32x32] == 1",
        "forward[phase=info_profile, input.shape=1x3x16x16] == 1",
        "amp_check[amp.result=skipped] == 1",
        "forward[phase=amp_check] == 0",
    )


def test_no_forward_ran_in_fp16_on_cpu(spans, init_tiny):
    init_tiny()
    spans.assert_none("forward", device="cpu", input_dtype="float16")
    spans.assert_none("forward", device="cpu", autocast="float16")
    assert spans.find("forward", device="cpu", autocast="bfloat16")  # what the CPU AMP check uses


def _train_step(model: nn.Module, batch: torch.Tensor, optimizer: torch.optim.Optimizer, step: int) -> None:
    with span("train_step", phase="train", module=model, attributes={"yolospan.step": step}):
        output, _ = model(batch)
        with span("loss"):
            loss = output.pow(2).mean()
        with span("backward"):
            loss.backward()
        with span("optimizer_step"):
            optimizer.step()
            optimizer.zero_grad()


def test_training_step_n_ran_forward_loss_backward_optimizer_step_in_order(spans, tiny):
    optimizer = torch.optim.SGD(tiny.parameters(), lr=0.01)
    for step in range(3):
        _train_step(tiny, torch.randn(2, 3, 8, 8), optimizer, step)
    step = spans.one("train_step", attrs={"yolospan.step": 2})
    step.children.assert_names(["forward", "loss", "backward", "optimizer_step"])
    assert step.children[0].attributes[A.PHASE] == "train"
    assert len(spans.phase("train").find("forward")) == 3
