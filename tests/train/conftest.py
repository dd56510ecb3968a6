"""Shared fixtures: a tiny synthetic dataset (written once) and one CPU thread per test.

One thread keeps CPU timings stable on small shared machines, where OpenMP threads spinning
against other processes can slow a 64-pixel step down by orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from yolospan.data import synth_dataset


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training and 2 validation images of 64 px, 3 classes."""
    root = tmp_path_factory.mktemp("shapes")
    synth_dataset(root, images=8, val_images=2, imgsz=64, nc=3, seed=1)
    return root


@pytest.fixture(scope="session")
def four_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 training images, no validation split: one batch to overfit."""
    root = tmp_path_factory.mktemp("four")
    synth_dataset(root, images=4, val_images=0, imgsz=64, nc=2, seed=3)
    return root
