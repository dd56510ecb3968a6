"""A tiny module run through the phases of model creation: the shape of YOLO's span tree, in milliseconds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from yolospan import attributes as A
from yolospan.tracing import phase, span


class Tiny(nn.Module):
    """Conv → SiLU → a two-output head, like Detect's ``(pred, [maps])`` in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act = nn.SiLU()
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y = self.head(self.act(self.conv(x)))
        return y.flatten(1), [y]


def fake_init(model: nn.Module, *, amp: bool = True, layers: bool = False) -> None:
    """model.init → stride_probe → forward; info_profile → forward; amp_check → forward ×2 (or none)."""
    with span(A.SPAN_MODEL_INIT, attributes={A.MODEL_NAME: "tiny"}):
        with phase(A.SPAN_STRIDE_PROBE, module=model, layers=layers):
            model.train()
            model(torch.zeros(1, 3, 32, 32))
        with phase(A.SPAN_INFO_PROFILE, module=model, layers=layers):
            model.eval()
            model(torch.zeros(1, 3, 16, 16))
        with phase(A.SPAN_AMP_CHECK, module=model, layers=layers) as amp_span:
            amp_span.set_attribute(A.AMP_RESULT, "passed" if amp else "skipped")
            if amp:
                image = torch.zeros(1, 3, 24, 16)
                model(image)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(image)


@pytest.fixture
def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny()


@pytest.fixture
def init_tiny(tiny: Tiny) -> Callable[..., Tiny]:
    def run(*, amp: bool = True, layers: bool = False) -> Tiny:
        fake_init(tiny, amp=amp, layers=layers)
        return tiny

    return run
