"""Overhead of the upstream instrumentors: model-level forwards and training steps, interleaved.

Part 1, forwards: models built from the same config by the upstream package, one before
instrumenting (``untraced``), one after (``model-level``: every forward a span) and one after
instrumenting with ``layers=True``, take turns at eval forwards of one 1x3xNxN image (order
rotated every round; one untimed forward per model first). Ratios are medians over the rounds,
against the untraced model. Spans go through a BatchSpanProcessor to an exporter that drops them.

Part 2, steps: the instrumentor's fixed cost per training step, with everything but the model
work: the ``on_train_batch_start``/``end`` callbacks, the wrapped ``BaseModel.loss`` and
``BaseTrainer.optimizer_step`` (with a model that does nothing), the spans and the metrics,
traced every step and every 100th step, against the same calls uninstrumented. That cost over
an untraced ultralytics step (forward + loss + backward + SGD step of the same model, measured
here) is the per-step ratio.

    python bench/upstream_overhead.py [--rounds 20] [--imgsz 640] [--steps 300] [--package ultralytics]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolospan-bench-"))
os.environ.setdefault("YOLOV5_CONFIG_DIR", tempfile.mkdtemp(prefix="yolospan-bench-"))

import torch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import yolospan
from yolospan.tracing import instrumentation_of


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def dropping_provider() -> tuple[TracerProvider, DropExporter]:
    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def package(name: str) -> tuple[type, Callable[[], Any], str]:
    """The instrumentor, a model factory (the upstream DetectionModel from its config) and its name."""
    if name == "ultralytics":
        from ultralytics.nn.tasks import DetectionModel

        from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

        return UltralyticsInstrumentor, lambda: DetectionModel("yolov8n.yaml", verbose=False), "yolov8n"
    from pathlib import Path

    import yolov5
    from yolov5.models.yolo import DetectionModel as V5Model

    from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor

    cfg = str(Path(yolov5.__file__).parent / "models" / "yolov5s.yaml")
    return YOLOv5Instrumentor, lambda: V5Model(cfg), "yolov5s"


def forwards(name: str, rounds: int, imgsz: int) -> dict[str, float]:
    instrumentor_class, make, model_name = package(name)
    provider, exporter = dropping_provider()
    torch.manual_seed(0)
    models = {"untraced": make().eval()}
    instrumentor = instrumentor_class()
    instrumentor.instrument(tracer_provider=provider)
    models["model-level"] = make().eval()
    layered = make().eval()  # what instrument(layers=True) does to the models it builds:
    handle = instrumentation_of(layered)
    assert handle is not None
    handle.remove()
    yolospan.instrument(layered, layers=True, tracer_provider=provider)
    models["layers=True"] = layered
    for model in models.values():
        model.load_state_dict(models["untraced"].state_dict())
    image = torch.zeros(1, 3, imgsz, imgsz)
    times: dict[str, list[float]] = {variant: [] for variant in models}
    order = list(models)
    gc.collect()
    gc.freeze()
    with torch.no_grad():
        for model in models.values():
            model(image)  # FLOPs and attribute caches filled, as in a long job
        for index in range(rounds):
            for variant in order[index % 3 :] + order[: index % 3]:
                start = time.perf_counter()
                models[variant](image)
                times[variant].append(time.perf_counter() - start)
    instrumentation_of(layered).remove()  # type: ignore[union-attr]
    instrumentor.uninstrument()
    provider.shutdown()
    base = statistics.median(times["untraced"])
    print(f"{name} {model_name} 1x3x{imgsz}x{imgsz} eval, {rounds} rounds, {exporter.count} spans dropped")
    print(f"{'untraced':<14} {base * 1000:9.2f} ms  1.000x")
    ratios = {}
    for variant in ("model-level", "layers=True"):
        ratio = statistics.median(t / b for t, b in zip(times[variant], times["untraced"], strict=True))
        ratios[variant] = ratio
        print(f"{variant:<14} {statistics.median(times[variant]) * 1000:9.2f} ms  {ratio:.3f}x")
    return ratios


def _criterion(preds: Any, batch: dict[str, Any]) -> Any:
    items = torch.tensor([1.0, 2.0, 3.0])
    return items.sum(), items


class _Stub(torch.nn.Module):
    """Stands in for ultralytics' model in a step: upstream's own ``BaseModel.loss`` runs on it."""

    def __init__(self) -> None:
        super().__init__()
        self.criterion = _criterion

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


class _FakeTrainer:
    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callable[[Any], None]]] = {}
        self.epoch = 0
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        self.accumulate = 1
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.loss_items = torch.tensor([1.0, 2.0, 3.0])
        self.tloss = self.loss_items
        self.fitness = 0.0
        self.ema = None

    def add_callback(self, event: str, callback: Callable[[Any], None]) -> None:
        self.callbacks.setdefault(event, []).append(callback)

    def run(self, event: str) -> None:
        for callback in self.callbacks.get(event, []):
            callback(self)


def step_cost(steps: int, every: int | None) -> float:
    """Seconds per step of the instrumentor's machinery alone (None: uninstrumented).

    The model's forward span is not in it: part 1 measures that.
    """
    from ultralytics.nn import tasks

    from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

    trainer = _FakeTrainer()
    batch = {"img": torch.zeros(2, 3, 8, 8), "cls": torch.zeros(4, 1), "batch_idx": torch.zeros(4)}
    stub = _Stub()
    provider, _ = dropping_provider()
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = UltralyticsInstrumentor()
    elapsed: list[float] = []

    def loop() -> None:
        for _ in range(steps):
            start = time.perf_counter()
            trainer.run("on_train_batch_start")
            tasks.BaseModel.loss(stub, batch)  # the wrapped method, on the stub
            if every is None:
                trainer.optimizer.zero_grad()
            else:
                assert instrumentor.training is not None
                instrumentor.training.optimizer_step(lambda: trainer.optimizer.zero_grad(), trainer, (), {})
            trainer.run("on_train_batch_end")
            elapsed.append(time.perf_counter() - start)

    if every is None:
        loop()
    else:
        instrumentor.instrument(tracer_provider=provider, meter_provider=meters, trace_every=every)
        assert instrumentor.training is not None
        instrumentor.training.do_train(loop, trainer, (), {})
        instrumentor.uninstrument()
    provider.shutdown()
    return statistics.median(elapsed)


def real_step(imgsz: int, batch: int, rounds: int) -> float:
    """Median seconds of one untraced ultralytics step: forward + loss + backward + SGD step."""
    from types import SimpleNamespace

    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False).train()
    model.args = SimpleNamespace(**vars(get_cfg()))  # the hyper-parameters the loss reads
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    data = {
        "img": torch.rand(batch, 3, imgsz, imgsz),
        "cls": torch.zeros(batch, 1),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]] * batch),
        "batch_idx": torch.arange(batch, dtype=torch.float32),
    }
    times = []
    for index in range(rounds + 1):
        start = time.perf_counter()
        loss, _ = model(data)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--step-imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--package", choices=("ultralytics", "yolov5", "both"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(2)
    names = ("ultralytics", "yolov5") if args.package == "both" else (args.package,)
    for name in names:
        forwards(name, args.rounds, args.imgsz)
        print()
    bare = step_cost(args.steps, None)
    every = step_cost(args.steps, 1) - bare
    hundredth = step_cost(args.steps, 100) - bare
    step = real_step(args.step_imgsz, args.batch, max(3, args.rounds // 4))
    print(f"ultralytics yolov8n step, batch {args.batch}x3x{args.step_imgsz}x{args.step_imgsz}, untraced:")
    print(f"{'step':<14} {step * 1000:9.2f} ms")
    print(f"{'every step':<14} {every * 1e6:9.1f} us/step  {(step + every) / step:.4f}x")
    print(f"{'every 100th':<14} {hundredth * 1e6:9.1f} us/step  {(step + hundredth) / step:.4f}x")


if __name__ == "__main__":
    main()
