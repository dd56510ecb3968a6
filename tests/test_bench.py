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


VARIANTS = ["untraced", "model-level", "layers=True", "hook path", "removed", "slot only"]


def test_trace_overhead_reports_every_variant_per_batch_and_precision_and_the_floors() -> None:
    rounds = 3  # not a multiple of 6: some copies end a square instrumented, the floors must cope
    out = run_bench(
        "trace_overhead.py",
        *("--rounds", str(rounds), "--model", "yolov5n", "--imgsz", "64", "--batch", "2"),
        *("--precision", "fp32", "bf16", "--diff-imgsz", "32", "--diff-rounds", "2", "--floor-rounds", "2"),
    )
    lines = out.splitlines()
    titles = [index for index, line in enumerate(lines) if "eval forward" in line]
    assert [lines[i].split(",")[:3] for i in titles] == [
        ["yolov5n 2x3x64x64 eval forward", " fp32", f" {rounds} rounds x 6 copies"],
        ["yolov5n 2x3x64x64 eval forward", " bf16", f" {rounds} rounds x 6 copies"],
    ]
    spans_per_layered_forward = 26  # the forward and yolov5n's 25 layers
    # Each round runs every variant once: two warm-ups and a timed forward each; model-level makes
    # one span per forward, layers=True (the native clock) and the hook path 26 each.
    per_round = 3 * (1 + 2 * spans_per_layered_forward)  # bench.WARMUP_FORWARDS + 1 forwards
    assert all(lines[i].endswith(f"cpu, {rounds * per_round} spans") for i in titles)
    assert "device ms" not in out  # no device time on the CPU
    smalls = [index for index, line in enumerate(lines) if line.startswith("at 2x3x32x32, 2 rounds")]
    floors = next(index for index, line in enumerate(lines) if line.startswith("API floor"))
    assert len(smalls) == 2 and titles[0] < smalls[0] < titles[1] < smalls[1] < floors
    for start, small, end in ((titles[0], smalls[0], titles[1]), (titles[1], smalls[1], floors)):
        table = rows("\n".join(lines[start:small]))
        assert list(table) == VARIANTS
        in_yolospan = {name: values[3] for name, values in table.items()}
        # No frame code ran: untraced and removed run no yolospan code, slot only its call slot alone.
        assert in_yolospan["untraced"] == in_yolospan["removed"] == in_yolospan["slot only"] == 0.0
        assert all(in_yolospan[name] > 0.0 for name in ("model-level", "layers=True", "hook path"))
        assert table["untraced"][1:3] == [1.0, 0.0]  # its paired ratio and difference with itself
        assert list(rows("\n".join(lines[small:end]))) == VARIANTS[1:]
    assert lines[floors].startswith("API floor: the tracer API making one forward's 25 layer spans")
    assert lines[floors + 1].startswith("fast floor: the fast path making the same 25 layer spans")
    assert lines[floors + 2].startswith("model-level floors: one forward span around 2 real forwards")
    assert "2x3x64x64 (fp32)" in lines[floors + 2]
    forward_floors = rows("\n".join(lines[floors + 3 :]))
    assert list(forward_floors) == ["api", "direct", "deferred"]
    assert all(values[0] > 0.0 and values[3] >= 1.0 for values in forward_floors.values())


def test_trace_overhead_forward_floors_make_one_current_and_exported_span_each() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from yolospan.tracing import get_tracer

    sys.path.insert(0, str(BENCH))
    try:
        import trace_overhead
    finally:
        sys.path.remove(str(BENCH))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ways = trace_overhead.forward_span_ways(get_tracer(provider))
    assert list(ways) == ["api", "direct", "deferred"]
    for name, (open_span, close_span) in ways.items():
        opened = open_span()
        current = trace.get_current_span().get_span_context()
        close_span(opened)
        assert not trace.get_current_span().get_span_context().is_valid, name  # detached
        (span,) = exporter.get_finished_spans()
        exporter.clear()
        assert current.is_valid and current.trace_flags.sampled, name
        assert (span.name, span.context.span_id, span.parent) == ("forward", current.span_id, None), name
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "yolospan"
        assert span.resource is provider.resource and span.end_time is not None


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


def test_trace_breakdown_reports_the_parts_of_every_variant() -> None:
    out = run_bench("trace_breakdown.py", "--forwards", "2", "--model", "yolov5n", "--imgsz", "64")
    lines = out.splitlines()
    assert lines[1] == "model-level" and "layers=True" in lines and "hook path" in lines
    sections = {
        "model-level": lines[1 : lines.index("layers=True")],
        "layers=True": lines[lines.index("layers=True") : lines.index("hook path")],
        "hook path": lines[lines.index("hook path") :],
    }
    labels = {name: {line[:44].rstrip() for line in body[1:]} for name, body in sections.items()}
    assert "  layer spans from the clock" in labels["layers=True"] & labels["hook path"]
    assert "layer calls followed (learned hook path)" in labels["hook path"]
    assert "  layer spans from the clock" not in labels["model-level"]
    assert "  forward span handed over, attributes late" in labels["model-level"]
    assert all("slot: compile/trace check (every call)" in found for found in labels.values())
