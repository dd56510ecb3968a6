"""YOLO-format datasets for training: reading, letterboxed batches, and a synthetic set for offline runs."""

from __future__ import annotations

from yolospan.data.dataset import (
    DATA_FILE,
    IMAGE_SUFFIXES,
    DatasetError,
    DatasetInfo,
    Sample,
    YoloDataset,
    read_dataset_info,
    split_dirs,
)
from yolospan.data.labels import LabelProblem, format_label_line, parse_label_lines, read_label_file
from yolospan.data.loader import Batch, collate, create_loader, worker_init
from yolospan.data.synth import SHAPES, SynthReport, synth_dataset

__all__ = [
    "DATA_FILE",
    "IMAGE_SUFFIXES",
    "SHAPES",
    "Batch",
    "DatasetError",
    "DatasetInfo",
    "LabelProblem",
    "Sample",
    "SynthReport",
    "YoloDataset",
    "collate",
    "create_loader",
    "format_label_line",
    "parse_label_lines",
    "read_dataset_info",
    "read_label_file",
    "split_dirs",
    "synth_dataset",
    "worker_init",
]
