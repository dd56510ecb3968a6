"""``yolospan data``: dataset utilities; ``synth`` writes a synthetic YOLO dataset for offline runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolospan.cli._args import non_negative_int, positive_int

_SYNTH_DESCRIPTION = """\
Write a small synthetic YOLO dataset: coloured shapes (one shape kind and colour per class) on
noisy backgrounds, with their exact boxes. Layout: DIR/images/{train,val}/*.png,
DIR/labels/{train,val}/*.txt ('class cx cy w h', normalised) and DIR/data.yaml (nc, names).
The same arguments always write the same files.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "data",
        help="dataset utilities (synth: write a synthetic dataset)",
        description="Dataset utilities.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = actions.add_parser(
        "synth",
        help="write a synthetic YOLO dataset of drawn shapes",
        description=_SYNTH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("dir", type=Path, metavar="DIR", help="folder to write (must not hold a dataset)")
    synth.add_argument("--images", type=positive_int, default=32, metavar="N", help="training images (32)")
    synth.add_argument(
        "--val-images",
        type=non_negative_int,
        metavar="N",
        help="validation images (default: a quarter of --images, at least 1)",
    )
    synth.add_argument("--imgsz", type=positive_int, default=128, metavar="N", help="long image side (128)")
    synth.add_argument("--nc", type=positive_int, default=3, metavar="N", help="classes (3)")
    synth.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    synth.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from yolospan.data import synth_dataset

    report = synth_dataset(
        args.dir, images=args.images, val_images=args.val_images, imgsz=args.imgsz, nc=args.nc, seed=args.seed
    )
    print(
        f"wrote {report.train_images} training and {report.val_images} validation images "
        f"({report.boxes} boxes, {report.nc} classes) to {report.root}"
    )
    return 0
