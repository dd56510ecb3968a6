"""Measure upstream YOLOv5's numbers for every shipped config and write ``upstream_numbers.json``.

Run in a separate environment that has the upstream package, never yolospan's own::

    python3 -m venv /tmp/up
    /tmp/up/bin/pip install torch==2.14.1 torchvision==0.29.1 yolov5==7.0.14 'setuptools<81'
    YOLO_OFFLINE=1 HOME=$(mktemp -d) /tmp/up/bin/python tests/yolo/measure_upstream.py [NAME ...]

For each config in ``models/`` it builds upstream's ``Model`` from yolospan's YAML file and
records what upstream's constructor prints (its summary line: layers, parameters, GFLOPs), the
strides, the anchors after the stride probe, the shapes of the stride probe's outputs, a
fingerprint of the state dict's keys and shapes, and digests of the outputs in eval and training
mode with the synthetic weights of ``upstream_table.synthetic_state_dict``. Upstream's class-wide
``Conv.default_act`` is reset after every build, so one config's ``activation:`` does not leak
into the next measurement.
"""

from __future__ import annotations

import copy
import fcntl
import io
import json
import logging
import platform
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upstream_table import (
    TABLE_PATH,
    digest,
    fingerprint,
    probe_images,
    synthetic_state_dict,
)

ROOT = Path(__file__).resolve().parents[2]
_SUMMARY = re.compile(r"summary: (\d+) layers, (\d+) parameters, (\d+) gradients(?:, ([\d.]+) GFLOPs)?")


def measure(name: str) -> dict[str, object]:
    from yolov5.models.common import Conv
    from yolov5.models.yolo import Model
    from yolov5.utils.general import LOGGER

    default_act = Conv.default_act
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    LOGGER.addHandler(handler)
    try:
        torch.manual_seed(0)
        model = Model(str(ROOT / "models" / f"{name}.yaml"))
    finally:
        LOGGER.removeHandler(handler)
        Conv.default_act = default_act
    summary = next(line for line in stream.getvalue().splitlines() if "summary:" in line)
    layers, params, gradients, gflops = _SUMMARY.search(summary).groups()  # type: ignore[union-attr]
    head = model.model[-1]
    # The stride probe's output maps, [1, na, 256/s, 256/s, no] per level, from what the probe learnt.
    maps = [(1, head.na, 256 // int(s), 256 // int(s), head.no) for s in model.stride.tolist()]
    state = model.state_dict()
    model.load_state_dict(synthetic_state_dict(state))
    images = probe_images()
    with torch.no_grad():
        evaluated = copy.deepcopy(model).eval()(images)
        trained = copy.deepcopy(model).train()(images)
    return {
        "how": (
            f"yolov5=={_version('yolov5')}, torch=={torch.__version__}, python {platform.python_version()}: "
            f"YOLO_OFFLINE=1 python tests/yolo/measure_upstream.py {name} "
            f"(upstream Model('models/{name}.yaml'))"
        ),
        "summary": summary.strip(),
        "layers": int(layers),
        "params": int(params),
        "gradients": int(gradients),
        "gflops": float(gflops),
        "rows": len(model.model),
        "strides": [float(s) for s in model.stride.tolist()],
        "anchors": head.anchors.tolist(),
        "stride_probe_shapes": [list(shape) for shape in maps],
        "state_dict": {"tensors": len(state), "fingerprint": fingerprint(state)},
        "outputs": {"eval": digest(evaluated), "train": digest(trained)},
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(names: list[str]) -> None:
    """Measure ``names`` (default: every shipped config), each row written to the table as it is done."""
    torch.set_num_threads(1)
    shipped = sorted(path.stem for path in (ROOT / "models").glob("*.yaml"))
    for name in names or shipped:
        row = measure(name)
        with open(TABLE_PATH, "a") as lock:  # several runs may share the table
            fcntl.flock(lock, fcntl.LOCK_EX)
            text = TABLE_PATH.read_text()
            table = json.loads(text) if text.strip() else {}
            table[name] = row
            TABLE_PATH.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
        print(name, row["summary"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
