"""The benchmark scripts run end to end and print what the docs quote (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
ROW = re.compile(r"^(?P<name>\S+(?: \S+)?)\s+(?P<numbers>(?:-?\d+\.\d+\s*)+)$")


def run_bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(output: str) -> dict[str, list[float]]:
    found = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            found[match["name"]] = [float(n) for n in match["numbers"].split()]
    return found


def test_trace_floor_reports_every_variant_and_both_floors() -> None:
    rounds = 3  # not a multiple of 5: some copies end instrumented, the floors must cope
    out = run_bench(
        "trace_floor.py",
        *("--rounds", str(rounds), "--model", "yolov5n", "--imgsz", "64", "--diff-imgsz", "32"),
        *("--diff-rounds", "2"),
    )
    lines = out.splitlines()
    spans_per_layered_forward = 26  # the forward and yolov5n's 25 layers
    # Each round runs every variant once: a warm-up and a timed forward each; model-level makes
    # one span per forward, layers=True (the native clock) and the hook path 26 each.
    per_round = 2 * (1 + 2 * spans_per_layered_forward)
    assert f"{(rounds + 2) * per_round} spans" in lines[0]
    table = rows(
        "\n".join(lines[: lines.index(next(line for line in lines if line.startswith("at 1x3x32x32")))])
    )
    assert list(table) == ["untraced", "model-level", "layers=True", "hook path", "removed"]
    in_yolospan = {name: values[3] for name, values in table.items()}
    assert in_yolospan["untraced"] == 0.0 and in_yolospan["removed"] == 0.0  # no yolospan code ran
    assert all(in_yolospan[name] > 0.0 for name in ("model-level", "layers=True", "hook path"))
    assert table["untraced"][1:3] == [1.0, 0.0]  # its paired ratio and difference with itself
    small = rows(
        "\n".join(lines[lines.index(next(line for line in lines if line.startswith("at 1x3x32x32"))) :])
    )
    assert list(small) == ["model-level", "layers=True", "hook path", "removed"]
    assert "2 rounds" in next(line for line in lines if line.startswith("at 1x3x32x32"))
    assert lines[-2].startswith("API floor: the tracer API making one forward's 25 layer spans")
    assert lines[-1].startswith("fast floor: the fast path making the same 25 layer spans")


def test_trace_overhead_prints_one_table_per_batch_and_precision() -> None:
    out = run_bench(
        "trace_overhead.py",
        *(
            "--rounds",
            "1",
            "--model",
            "yolov5n",
            "--imgsz",
            "64",
            "--batch",
            "2",
            "--precision",
            "fp32",
            "bf16",
        ),
    )
    titles = [line for line in out.splitlines() if "eval forward" in line]
    assert [title.split(",")[:2] for title in titles] == [
        ["yolov5n 2x3x64x64 eval forward", " fp32"],
        ["yolov5n 2x3x64x64 eval forward", " bf16"],
    ]
    assert all(title.endswith(f"cpu, {2 * 27} spans") for title in titles)
    rows_per_table = [line.split()[0] for line in out.splitlines() if ROW.match(line)]
    assert rows_per_table == ["untraced", "model-level", "layers=True", "removed"] * 2
    assert "device ms" not in out  # no device time on the CPU


def test_trace_overhead_refuses_cuda_without_a_gpu_and_bad_batches() -> None:
    for args, problem in (
        (("--batch", "0"), "--batch: batch sizes must be positive"),
        *((("--device", "cuda"), "--device cuda: CUDA is not available") for _ in range(not _cuda())),
    ):
        done = subprocess.run(
            [sys.executable, str(BENCH / "trace_overhead.py"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2 and problem in done.stderr, done.stderr


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_train_overhead_reports_every_variant_and_the_fixed_cost() -> None:
    out = run_bench(
        "train_overhead.py",
        *("--rounds", "2", "--warmup", "1", "--imgsz", "64", "--batch", "2", "--threads", "1"),
    )
    table = rows(out)
    assert list(table)[:4] == ["untraced", "untraced 2", "every step", "every 100th"]
    fixed = re.findall(r"^(every step|every 100th)\s+(\d+\.\d) us\s+ratio (\d+\.\d+)$", out, re.M)
    assert [name for name, _, _ in fixed] == ["every step", "every 100th"]
    assert all(float(ratio) >= 1.0 for _, _, ratio in fixed)  # (step + cost) / step


def test_trace_breakdown_reports_the_parts_of_both_variants() -> None:
    out = run_bench("trace_breakdown.py", "--forwards", "2", "--model", "yolov5n", "--imgsz", "64")
    lines = out.splitlines()
    assert lines[1] == "model-level" and "layers=True" in lines
    layered = lines[lines.index("layers=True") :]
    assert any(line.startswith("  layer spans from the clock") for line in layered)
    assert not any(
        line.startswith("  layer spans from the clock") for line in lines[: lines.index("layers=True")]
    )
