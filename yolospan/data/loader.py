"""Batches for training: stacked uint8 images and one targets tensor, from a DataLoader.

Targets are upstream's layout, one row per box: ``[image index in batch, class, cx, cy, w, h]``,
coordinates normalised to the letterboxed image. Images stay uint8 until they are on the
training device (a quarter of the bytes to copy).

Worker processes never emit spans: `worker_init` routes yolospan's tracing in each worker to a
no-op provider, so a forked copy of the parent's exporters can neither send nor lose anything,
and every span of a run comes from the main process.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import NamedTuple

import torch
from opentelemetry.trace import NoOpTracerProvider
from torch.utils.data import DataLoader, Dataset

from yolospan.data.dataset import Sample
from yolospan.tracing import use_tracer_provider

__all__ = ["Batch", "collate", "create_loader", "worker_init"]

_worker_routing = ExitStack()  # held for the worker's lifetime; in the main process it stays empty


class Batch(NamedTuple):
    """One training batch."""

    images: torch.Tensor  # uint8 [b, 3, h, w]
    targets: torch.Tensor  # float32 [n, 6]: image index, class, cx, cy, w, h
    paths: tuple[str, ...]


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack images; number each sample's boxes with its index in the batch."""
    images = torch.stack([sample.image for sample in samples])
    rows = []
    for index, sample in enumerate(samples):
        column = torch.full((len(sample.labels), 1), float(index), dtype=torch.float32)
        rows.append(torch.cat((column, sample.labels), 1))
    targets = torch.cat(rows, 0) if rows else torch.zeros((0, 6), dtype=torch.float32)
    return Batch(images, targets, tuple(sample.path for sample in samples))


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: yolospan's spans in a worker go to a no-op provider."""
    _worker_routing.enter_context(use_tracer_provider(NoOpTracerProvider()))


def create_loader(
    dataset: Dataset[Sample],
    *,
    batch_size: int,
    shuffle: bool = True,
    workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    multiprocessing_context: str | None = None,
) -> DataLoader[Sample]:
    """A DataLoader of `Batch` es; shuffling is reproducible from ``seed``.

    Workers stay alive between epochs, so they are forked once per run rather than per epoch.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=worker_init,
        generator=generator,
        persistent_workers=workers > 0,
        multiprocessing_context=multiprocessing_context if workers > 0 else None,
    )
