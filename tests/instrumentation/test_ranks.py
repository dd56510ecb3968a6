"""Two gloo processes on the CPU: every span the instrumentor starts carries its rank."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("ultralytics")

from yolospan import attributes as A

RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch.distributed as dist
    from yolospan.testing import SpanRecorder
    from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

    dist.init_process_group("gloo")
    with SpanRecorder() as spans:
        UltralyticsInstrumentor().instrument(tracer_provider=spans.provider)
        from ultralytics.nn.tasks import DetectionModel
        from ultralytics.utils.checks import check_amp

        check_amp(DetectionModel("yolov8n.yaml", verbose=False))
        UltralyticsInstrumentor().uninstrument()
    dist.barrier()
    dist.destroy_process_group()
    json.dump([[s.name, s.attributes] for s in spans.finished], open(sys.argv[1], "w"))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_span_of_each_rank_carries_rank_and_world_size(tmp_path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    outputs = [tmp_path / f"rank{rank}.json" for rank in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(outputs[rank])],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-2000:]
    for rank, output in enumerate(outputs):
        recorded = json.loads(output.read_text())
        names = [name for name, _ in recorded]
        assert sorted(names) == sorted(["model.init", "stride_probe", "forward", "amp_check"])
        for name, attrs in recorded:
            assert (attrs.get(A.RANK), attrs.get(A.WORLD_SIZE)) == (rank, 2), name
