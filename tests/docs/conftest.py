"""Fixtures for deliberately partial code blocks in the docs (``<!-- docs-test: fixture NAME -->``).

Each fixture returns a dict of names that is put into the block's namespace before it runs. The
block's working directory is the test's ``tmp_path``, so a fixture may also leave files there
(a dataset the block reads). The rules for the blocks are in tests/docs/docs_blocks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_no_otel_settings(clean_otel_env: None) -> Iterator[None]:
    """The blocks run as on a fresh machine: no OTEL_ settings from the shell; one CPU thread keeps
    small forwards fast on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model() -> dict[str, Any]:
    """``model`` (a small convolutional net) and ``x``, an input for it."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(8, 2, 1)
    )
    return {"model": model.eval(), "x": torch.zeros(1, 3, 16, 16)}


@pytest.fixture
def training_loop() -> dict[str, Any]:
    """What a hand-written training step needs: ``model``, ``batches`` (4), ``optimizer``, ``criterion``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    return {
        "model": model,
        "batches": [torch.randn(3, 4) for _ in range(4)],
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.01),
        "criterion": lambda output: output.pow(2).mean(),
    }


@pytest.fixture
def shapes_dataset(tmp_path: Path) -> dict[str, Any]:
    """``data/shapes`` in the block's directory, as ``yolospan data synth data/shapes --images 16``
    writes it (16 training images of 128 px, 3 classes); no names."""
    from yolospan.data import synth_dataset

    synth_dataset(tmp_path / "data" / "shapes", images=16, val_images=4, imgsz=128, seed=0)
    return {}
