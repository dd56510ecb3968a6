"""``yolospan trace``: create a model and show every forward it runs, live and as a trace file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolospan.cli._args import (
    choose_exporters,
    exporter_list,
    positive_int,
    recording_off,
    start_output_file,
    written,
)
from yolospan.errors import UserError
from yolospan.inputs import check_regular_file

_DESCRIPTION = """\
Create a YOLOv5 model the way upstream does - build, stride probe, info profile, AMP check -
and emit every phase and forward as an OpenTelemetry span with shapes, dtypes, devices and
FLOPs. With no collector configured the spans are printed as a live tree; --out also writes
them as an OTLP JSON trace file (Jaeger's UI can open it). OTLP export is configured with the
standard OTEL_EXPORTER_OTLP_* variables and is switched on automatically when an endpoint is set.
"""

_EPILOG = """\
examples:
  yolospan trace yolov5s
  yolospan trace yolov5n --layers --out yolov5n.otlp.jsonl
  yolospan trace path/to/custom.yaml --nc 3 --amp-check on --image photo.jpg
  yolospan trace yolov5n --weights runs/train/<id>/weights/last.pt --amp-check on
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 yolospan trace yolov5s --exporter console,otlp
"""


def _flop_list(text: str) -> tuple[str, ...]:
    from yolospan.tracing._torch_flops import parse_methods

    try:
        return parse_methods(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "trace",
        help="create a model and trace every forward it runs",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a shipped config (yolov5s, yolov5n6, yolov5s-ghost, yolov3, yolov5s-seg ...: an unknown "
        "name lists all 28) or a path to a model YAML",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="PATH",
        help="load a yolospan training checkpoint (last.pt) or a plain state dict; default: random init",
    )
    parser.add_argument(
        "--checkpoint-weights",
        choices=("ema", "model"),
        default="ema",
        help="which weights of a training checkpoint to load (ema)",
    )
    parser.add_argument("--nc", type=positive_int, metavar="N", help="override the number of classes")
    parser.add_argument(
        "--imgsz",
        type=positive_int,
        default=640,
        metavar="N",
        help="image size GFLOPs are reported at (640)",
    )
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu, cuda or cuda:N (cpu)")
    parser.add_argument(
        "--amp-check",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: run on CUDA, skip on CPU as upstream does; on: also on CPU with bfloat16; off: skip",
    )
    parser.add_argument("--image", metavar="PATH", help="image for the AMP check (default: built in)")
    parser.add_argument("--layers", action="store_true", help="also trace each layer of every forward")
    parser.add_argument(
        "--fuse", action="store_true", help="fuse Conv+BatchNorm afterwards, as for inference"
    )
    parser.add_argument(
        "--flops",
        type=_flop_list,
        default=("thop",),
        metavar="LIST",
        help="FLOPs counters: thop (default), or thop,torch to also count with PyTorch's FlopCounterMode "
        "in the same forward (yolospan.flops.torch)",
    )
    parser.add_argument(
        "--exporter",
        type=exporter_list,
        metavar="LIST",
        help="comma-separated: console, file, otlp (default: console, plus file with --out, plus otlp "
        "when OTEL_EXPORTER_OTLP_ENDPOINT is set)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="PATH", help="trace file to write, replacing it (OTLP JSON lines)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolospan.otel import setup_tracing
    from yolospan.yolo import create_model

    exporters = choose_exporters(args.exporter, args.out, console=True)
    if args.image is not None and not args.image.startswith(("http://", "https://")):
        check_regular_file(args.image, "image file")  # before any file or span is written
    if args.out is not None:
        start_output_file(args.out)
    telemetry = setup_tracing(exporters, out=args.out, console=sys.stdout)
    with telemetry:
        create_model(
            args.model,
            nc=args.nc,
            imgsz=args.imgsz,
            device=args.device,
            amp_check=args.amp_check,
            image=args.image,
            fuse_layers=args.fuse,
            weights=args.weights,
            checkpoint_weights=args.checkpoint_weights,
            tracer_provider=telemetry.tracer_provider,
            trace_layers=args.layers,
            flops=args.flops,
        )
    if telemetry.file_problem is not None:  # spans lost are never reported as written
        raise UserError(telemetry.file_problem)
    if args.out is not None:
        print(written(args.out, "trace"), file=sys.stderr)
    elif recording_off() is not None:  # an empty screen would look like a bug
        print(f"nothing recorded ({recording_off()})", file=sys.stderr)
    return 0
