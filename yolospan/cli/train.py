"""``yolospan train``: train a YOLOv5 model on a YOLO-format dataset, every step traced."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolospan.cli._args import (
    choose_exporters,
    exporter_list,
    non_negative_int,
    positive_int,
    start_output_file,
    written,
)
from yolospan.errors import UserError

_DESCRIPTION = """\
Train a YOLOv5 model on a YOLO-format dataset (images/ and labels/, with train/ and val/
subfolders when split; 'yolospan data synth' writes one) with upstream's loss, SGD warm-up and
schedule, EMA and gradient scaling on CUDA. The model's creation is one trace; every traced
step is its own trace (train_step with forward, loss, backward, optimizer_step), every
validation pass another; all carry the run's yolospan.run.id. Metrics (step duration,
images/s, losses, lr) are recorded for every step, traced or not.
"""

_EPILOG = """\
examples:
  yolospan data synth data/shapes --images 64
  yolospan train --data data/shapes --cfg yolov5n --imgsz 128 --epochs 3 --batch 8
  yolospan train --data data/shapes --cfg yolov5n --trace-every 100 --exporter file --out run.jsonl
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 yolospan train --data data/shapes --cfg yolov5s

sampling: --trace-every N traces steps 0, N, 2N, ...; OTEL_TRACES_SAMPLER (e.g. traceidratio with
OTEL_TRACES_SAMPLER_ARG=0.1) then samples among those.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "train",
        help="train a model on a YOLO dataset, tracing every step",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset root folder")
    parser.add_argument(
        "--cfg",
        required=True,
        metavar="MODEL",
        help="a shipped config (yolov5n/s/m/l/x) or a path to a model YAML",
    )
    parser.add_argument("--imgsz", type=positive_int, default=640, metavar="N", help="image size (640)")
    parser.add_argument("--epochs", type=positive_int, default=3, metavar="N", help="epochs (3)")
    parser.add_argument("--batch", type=positive_int, default=16, metavar="N", help="batch size (16)")
    parser.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda or cuda:N (cpu)")
    parser.add_argument(
        "--workers", type=non_negative_int, default=0, metavar="N", help="DataLoader worker processes (0)"
    )
    parser.add_argument(
        "--trace-every", type=positive_int, default=1, metavar="N", help="trace every N-th step (1: all)"
    )
    parser.add_argument(
        "--nc", type=positive_int, metavar="N", help="classes (default: data.yaml, else from the labels)"
    )
    parser.add_argument(
        "--save-dir",
        type=Path,
        metavar="DIR",
        help="where weights/last.pt is saved each epoch (default: runs/train/RUN_ID)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    parser.add_argument(
        "--cosine", action="store_true", help="cosine learning-rate schedule (default: linear)"
    )
    parser.add_argument("--layers", action="store_true", help="also trace each layer in traced steps")
    parser.add_argument("--no-val", action="store_true", help="skip the validation pass after each epoch")
    parser.add_argument(
        "--exporter",
        type=exporter_list,
        metavar="LIST",
        help="comma-separated: console, file, otlp (default: file with --out, otlp when "
        "OTEL_EXPORTER_OTLP_ENDPOINT is set, console when neither)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="trace file to write, replacing it (OTLP JSON lines); metrics go to PATH.metrics.jsonl "
        "(run.jsonl: run.metrics.jsonl)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from yolospan.otel import metrics_path, setup_tracing
    from yolospan.train import TrainConfig, Trainer, new_run_id
    from yolospan.train.progress import above_progress

    exporters = choose_exporters(args.exporter, args.out, console=False, metrics=True)
    run_id = new_run_id()
    config = TrainConfig(
        data=args.data,
        cfg=args.cfg,
        imgsz=args.imgsz,
        epochs=args.epochs,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        trace_every=args.trace_every,
        nc=args.nc,
        save_dir=args.save_dir if args.save_dir is not None else Path("runs", "train", run_id),
        seed=args.seed,
        cosine=args.cosine,
        validate=not args.no_val,
        layers=args.layers,
        run_id=run_id,
    )
    trainer = Trainer(
        config,
        progress=sys.stderr,
        on_epoch_end=lambda summary: print(summary.line(config.epochs), file=sys.stderr, flush=True),
    )  # scans the dataset: bad data fails here, before any telemetry starts
    if args.out is not None:
        start_output_file(args.out)
        start_output_file(metrics_path(args.out))
    # One renderer owns the terminal: the span tree and log lines scroll above the progress bar.
    console = above_progress(sys.stdout)
    telemetry = setup_tracing(exporters, out=args.out, console=console, layers_in_console=False, metrics=True)
    with telemetry, logging_redirect_tqdm():
        result = trainer.fit(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
    if telemetry.file_problem is not None:  # spans lost are never reported as written
        raise UserError(telemetry.file_problem)
    print(f"run {result.run_id}: {result.steps} steps", file=sys.stderr)
    if result.checkpoint is not None:
        print(f"checkpoint saved to {result.checkpoint}", file=sys.stderr)
    if args.out is not None:
        metrics_file = metrics_path(args.out)
        metrics = written(metrics_file, "metrics")
        metrics = f"metrics to {metrics_file}" if metrics.startswith("metrics written") else metrics
        print(f"{written(args.out, 'trace')}, {metrics}", file=sys.stderr)
    return 0
