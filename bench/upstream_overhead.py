"""Overhead of the upstream instrumentors, measured as yolospan's own and against the same targets.

Part 1, forwards, as ``bench/trace_overhead.py`` measures yolospan's models (its Latin square,
hook clock and tables are imported from it). The upstream package builds one model from its
config (ultralytics: yolov8n; yolov5: yolov5s) while its instrumentor is applied, and four deep
copies of it (plain models: torch leaves yolospan's slot out of deep copies) take turns at four
variants in a Latin square (in round r, copy c runs variant (c + r) mod 4), so neither a copy's
memory placement nor the order within a round favours a variant:

- untraced: no yolospan instrumentation on the model;
- model-level: what the instrumentor does to every model it builds (``ModelTracer.watch``):
  ``yolospan.instrument(model)``, every forward a span;
- layers=True: what it does with ``layers=True``: ``yolospan.instrument(model, layers=True)``.
  The instrumentor's ``traced_layers`` gives upstream's layer list (``model.model[i]``), and every
  layer call goes through yolospan's call slot: the hook path (upstream's models do not time their
  own layers as yolospan's do), whose target is 1.01x rather than the native clock's 1.005x;
- removed: instrumented with ``layers=True``, then ``remove()``.

The instrumentor stays applied for the whole run, so in every variant, untraced and removed
included, each forward also goes through its wrapped ``forward`` (ultralytics
``BaseModel.forward``, yolov5 ``DetectionModel.forward``: a wrapt wrapper that reads one context
variable, for the stride probe of a model being built, then calls upstream's forward). The script
checks before and after each square that the model class's ``forward`` is that wrapper and that
no copy has a ``forward`` of its own, so the table's ratios are those of yolospan's
instrumentation of the model alone. What the wrapper adds to every forward of a process with the
instrumentor applied is the last line, ``wrapped forward``: the instrumentor's own wrapper around a
method that returns its argument, against that method unwrapped, in a tight loop (the median over
blocks of calls, alternating), and 1 + that time over the untraced median.

After each switch two untimed forwards refill the per-signature caches, so the timed forward is
the steady state of a long job. The garbage collector is frozen once the models are built. Spans
go through a BatchSpanProcessor to an exporter that drops them. Columns of each table (medians
over the rounds), as ``trace_overhead.py``'s:

- median ms: the variant's forward time;
- paired ratio, paired diff ms: medians of the paired ratios and differences: in each round, the
  variant's time over (minus) the untraced time of the same round;
- in yolospan ms: the time spent inside yolospan's frame code (a traced call's open and close:
  span start and end, attributes, the layer spans) per timed forward, and ``1 + yolospan/median``
  that time over the untraced median: the overhead without the noise of the convolutions.

``--diff-imgsz`` adds, after each table, a second interleaved run at a smaller input and reports
each variant's median paired difference from untraced there, over the untraced median of the
table: yolospan's cost per forward does not grow with the image, while the noise of the
convolutions does. Targets (yolospan's own, docs/performance.md): model-level 1.001x,
layers=True 1.005x with the native clock, 1.01x on the hook path.

Part 2, steps: the instrumentor's fixed cost per training step, with everything but the model
work, traced every step and every 100th step (metrics on every step), against the same calls
uninstrumented; the forward span is part 1's. Its ratio is (step + cost) / step over an untraced
step of the package's model (forward + loss + backward + SGD step at ``--step-imgsz`` and
``--batch``, measured here); targets 1.02x and 1.002x, as ``bench/train_overhead.py``'s.

- ultralytics (step over yolov8n): the ``on_train_batch_start``/``end`` callbacks of a stand-in
  trainer, upstream's ``BaseModel.loss`` (wrapped) on a model and criterion that do nothing, and
  the instrumentor's ``BaseTrainer.optimizer_step`` wrapper around ``zero_grad``, the run opened
  by its ``BaseTrainer._do_train`` wrapper (both called directly, with the stand-in trainer);
- yolov5 (step over yolov5n): ``train.py``'s hooks through a ``yolov5.utils.callbacks.Callbacks``
  object's ``run`` (``on_train_batch_start``, ``on_train_batch_end`` with the batch), upstream's
  ``ComputeLoss.__call__`` (wrapped) on a ``ComputeLoss`` over a stub model (upstream's ``Detect``
  head alone, its predictions made once) whose target assignment matches nothing and whose
  objectness criterion does nothing, so the loss runs only a few tiny tensor ops (the real loss's
  work would be noise here, as the ultralytics stub's criterion avoids it), and the step of an
  optimizer from the wrapped ``smart_optimizer`` (torch's step hooks; no parameter has a
  gradient), the run opened and ended by ``on_pretrain_routine_start`` and ``on_train_end``
  outside the timed steps.

Each package's part 2 prints its untraced step, then per variant the fixed cost in us per step
(median of the traced loop minus median of the untraced one), (step + cost) / step, and the spans
the traced loop made (ultralytics: ``train_step``, ``loss``, ``backward``, ``optimizer_step`` per
traced step; yolov5 also its one ``epoch``), which shows the machinery ran.

    python bench/upstream_overhead.py [--rounds 40] [--imgsz 640] [--diff-imgsz 160] [--diff-rounds N]
        [--steps 300] [--step-imgsz 320] [--batch 8] [--threads 2] [--package ultralytics|yolov5|both]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolospan-bench-"))
os.environ.setdefault("YOLOV5_CONFIG_DIR", tempfile.mkdtemp(prefix="yolospan-bench-"))

import torch
import wrapt
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trace_overhead import Copy, HookClock, differences, dropping_provider, run_square, table
from yolospan.tracing import instrumentation_of

VARIANTS = ("untraced", "model-level", "layers=True", "removed")
"""Part 1's variants: `trace_overhead.Copy` switches a copy between them."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Upstream's INFO lines (model summaries, the optimizer's groups) left out of the tables."""
    loggers = [logging.getLogger(name) for name in ("ultralytics", "yolov5")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# --- part 1: forwards -----------------------------------------------------------------------------


def package(name: str) -> tuple[type, Callable[[], torch.nn.Module], str]:
    """The instrumentor, a model factory (the upstream DetectionModel from its config) and its name."""
    if name == "ultralytics":
        from ultralytics.nn.tasks import DetectionModel

        from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

        return UltralyticsInstrumentor, lambda: DetectionModel("yolov8n.yaml", verbose=False), "yolov8n"
    from yolov5.models.yolo import DetectionModel as V5Model

    from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor

    return YOLOv5Instrumentor, lambda: V5Model(_yolov5_file("models", "yolov5s.yaml")), "yolov5s"


def _yolov5_file(*parts: str) -> str:
    import yolov5

    return str(Path(yolov5.__file__).parent.joinpath(*parts))


def check_wrapped_forward(copies: list[Copy], wrapper: Callable[..., Any]) -> None:
    """Every copy's ``forward`` is its class's, and that is a wrapt wrapper calling ``wrapper``."""
    for each in copies:
        installed = inspect.getattr_static(type(each.model), "forward")
        ours = isinstance(installed, wrapt.FunctionWrapper) and installed._self_wrapper == wrapper
        if not ours or "forward" in vars(each.model):
            raise RuntimeError(f"{type(each.model).__name__}.forward is not the instrumentor's wrapper")


def wrapper_cost(wrapper: Callable[..., Any], blocks: int = 40, calls: int = 2000) -> float:
    """Seconds per call that ``wrapper`` (wrapt's calling convention) adds to a method returning its
    argument: blocks of calls to the plain and the wrapped method, alternating; difference of medians."""

    class Plain:
        def forward(self, x: object) -> object:
            return x

    class Wrapped:
        forward = wrapt.FunctionWrapper(Plain.forward, wrapper)

    times: dict[type, list[float]] = {Plain: [], Wrapped: []}
    x = object()
    for index in range(blocks + 2):
        for cls in (Plain, Wrapped) if index % 2 else (Wrapped, Plain):
            instance = cls()
            start = time.perf_counter()
            for _ in range(calls):
                instance.forward(x)  # looked up on every call, as nn.Module.__call__ does
            if index >= 2:  # two blocks each to warm up
                times[cls].append((time.perf_counter() - start) / calls)
    return statistics.median(times[Wrapped]) - statistics.median(times[Plain])


def forwards(name: str, args: argparse.Namespace, clock: HookClock) -> None:
    """Part 1 for one package: the table, the ``--diff-imgsz`` differences, the wrapper's cost."""
    instrumentor_class, make, model_name = package(name)
    instrumentor = instrumentor_class()
    provider, _ = dropping_provider()  # the model.init spans of the one model built here
    instrumentor.instrument(tracer_provider=provider, layers=False)
    try:
        assert instrumentor.tracer is not None
        wrapper = instrumentor.tracer.forward  # what the model class's forward calls first
        torch.manual_seed(0)
        with quiet():
            base = make().eval()
        if instrumentation_of(base) is None:
            raise RuntimeError(f"the {name} instrumentor did not instrument the model it built")
        copies = [Copy(base, generic=False) for _ in VARIANTS]
        del base
        if any(instrumentation_of(each.model) is not None for each in copies):
            raise RuntimeError("a deep copy of an instrumented model is instrumented")
        gc.collect()
        gc.freeze()
        x = torch.zeros(1, 3, args.imgsz, args.imgsz)
        clock.seconds = {}
        check_wrapped_forward(copies, wrapper)
        with clock:
            wall, device, spans = run_square(copies, x, args.rounds, None, clock, variants=VARIANTS)
        check_wrapped_forward(copies, wrapper)
        table(
            f"{name} {model_name} 1x3x{args.imgsz}x{args.imgsz} eval forward, fp32, "
            f"{len(wall['untraced'])} rounds x {len(VARIANTS)} copies, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, cpu, {spans} spans",
            wall,
            device,
            dict(clock.seconds),
        )
        base_median = statistics.median(wall["untraced"])
        if args.diff_imgsz:
            small_x = torch.zeros(1, 3, args.diff_imgsz, args.diff_imgsz)
            small, _, _ = run_square(
                copies, small_x, args.diff_rounds or 4 * args.rounds, None, clock, variants=VARIANTS
            )
            check_wrapped_forward(copies, wrapper)
            differences(small, small_x, base_median, args.imgsz)
        cost = wrapper_cost(wrapper)
        print(
            f"wrapped forward (every variant): {cost * 1e6:.2f} us per call, "
            f"1 + wrapper/median = {1 + cost / base_median:.4f}"
        )
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


# --- part 2: ultralytics' steps -------------------------------------------------------------------


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


def ultralytics_step_cost(steps: int, every: int | None) -> tuple[float, int]:
    """Median seconds per step of ultralytics' instrumentor machinery alone (None: uninstrumented),
    and the spans it made."""
    from ultralytics.nn import tasks

    from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

    trainer = _FakeTrainer()
    batch = {"img": torch.zeros(2, 3, 8, 8), "cls": torch.zeros(4, 1), "batch_idx": torch.zeros(4)}
    stub = _Stub()
    provider, exporter = dropping_provider()
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
        try:
            assert instrumentor.training is not None
            instrumentor.training.do_train(loop, trainer, (), {})
        finally:
            instrumentor.uninstrument()
    provider.shutdown()
    return statistics.median(elapsed), exporter.count


def ultralytics_real_step(imgsz: int, batch: int, rounds: int) -> float:
    """Median seconds of one untraced ultralytics yolov8n step: forward + loss + backward + SGD step."""
    from types import SimpleNamespace

    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    with quiet():
        model = DetectionModel("yolov8n.yaml", nc=2, verbose=False).train()
    model.args = SimpleNamespace(**vars(get_cfg()))  # the hyper-parameters the loss reads
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    data = {
        "img": torch.rand(batch, 3, imgsz, imgsz),
        "cls": torch.zeros(batch, 1),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]] * batch),
        "batch_idx": torch.arange(batch, dtype=torch.float32),
    }

    def step() -> None:
        loss, _ = model(data)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    return _median_time(step, rounds)


def _median_time(step: Callable[[], None], rounds: int) -> float:
    """Median seconds of ``step`` over ``rounds`` calls, after one untimed call."""
    step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- part 2: yolov5's steps -----------------------------------------------------------------------


def _yolov5_hyp() -> dict[str, Any]:
    """The hyper-parameters train.py trains from scratch with (the loss reads its gains)."""
    import yaml

    with open(_yolov5_file("data", "hyps", "hyp.scratch-low.yaml"), encoding="utf-8") as file:
        hyp: dict[str, Any] = yaml.safe_load(file)
    return hyp


class _Head(torch.nn.Module):
    """Stands in for a yolov5 model in a step: upstream's ``Detect`` as ``model[-1]``, and ``hyp``,
    all ``ComputeLoss`` reads; 4 channels in, 2 classes, one level of 3 anchors at stride 8."""

    def __init__(self) -> None:
        from yolov5.models.yolo import Detect

        super().__init__()
        self.model = torch.nn.ModuleList([Detect(nc=2, anchors=([10, 13, 16, 30, 33, 23],), ch=(4,))])
        self.model[-1].stride = torch.tensor([8.0])
        self.hyp = _yolov5_hyp()

    def forward(self, features: torch.Tensor) -> Any:
        return self.model[-1]([features])


def _no_targets(preds: Any, targets: torch.Tensor) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Target assignment that matches nothing: (classes, boxes, indices, anchors) per level."""
    none = torch.zeros(0, dtype=torch.long)
    return (
        [none] * len(preds),
        [none] * len(preds),
        [(none, none, none, none)] * len(preds),
        [none] * len(preds),
    )


def _no_objectness(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.zeros(())


def yolov5_step_cost(steps: int, every: int | None) -> tuple[float, int]:
    """Median seconds per step of yolov5's instrumentor machinery alone (None: uninstrumented), and
    the spans it made."""
    from yolov5.utils import torch_utils
    from yolov5.utils.callbacks import Callbacks
    from yolov5.utils.loss import ComputeLoss

    from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor

    provider, exporter = dropping_provider()
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = YOLOv5Instrumentor()
    if every is not None:
        instrumentor.instrument(tracer_provider=provider, meter_provider=meters, trace_every=every)
    elapsed: list[float] = []
    try:
        head = _Head()
        criterion = ComputeLoss(head)  # upstream's loss over the stub head, its math made free:
        criterion.build_targets = _no_targets  # type: ignore[method-assign]
        criterion.BCEobj = _no_objectness
        with torch.no_grad():
            preds = head(torch.zeros(2, 4, 2, 2))
        targets = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.3, 0.3], [1.0, 1.0, 0.5, 0.5, 0.3, 0.3]])
        images = torch.zeros(2, 3, 8, 8)
        callbacks = Callbacks()
        callbacks.run("on_pretrain_routine_start")  # opens the run when instrumented
        with quiet():
            optimizer = torch_utils.smart_optimizer(head, "SGD", 0.01, 0.9, 0.0)
        callbacks.run("on_train_epoch_start")
        for index in range(steps):
            start = time.perf_counter()
            callbacks.run("on_train_batch_start")
            criterion(preds, targets)
            optimizer.step()
            optimizer.zero_grad()
            callbacks.run("on_train_batch_end", head, index, images, targets, None, [])
            elapsed.append(time.perf_counter() - start)
        callbacks.run("on_train_end")  # ends the run
    finally:
        if every is not None:
            instrumentor.uninstrument()
    provider.shutdown()
    return statistics.median(elapsed), exporter.count


def yolov5_real_step(imgsz: int, batch: int, rounds: int) -> float:
    """Median seconds of one untraced yolov5 yolov5n step: forward + ComputeLoss + backward + SGD step."""
    from yolov5.models.yolo import DetectionModel
    from yolov5.utils.loss import ComputeLoss

    with quiet():
        model = DetectionModel(_yolov5_file("models", "yolov5n.yaml"), nc=2).train()
    model.hyp = _yolov5_hyp()
    criterion = ComputeLoss(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    images = torch.rand(batch, 3, imgsz, imgsz)
    targets = torch.tensor([[float(i), 0.0, 0.5, 0.5, 0.3, 0.3] for i in range(batch)])

    def step() -> None:
        loss, _ = criterion(model(images), targets)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    return _median_time(step, rounds)


STEPS = {
    "ultralytics": ("yolov8n", ultralytics_step_cost, ultralytics_real_step),
    "yolov5": ("yolov5n", yolov5_step_cost, yolov5_real_step),
}
"""Part 2 per package: the model of its real step, its fixed cost per step, its real step."""


def steps(name: str, args: argparse.Namespace) -> None:
    """Part 2 for one package: the untraced step, and the fixed cost traced every step and every 100th."""
    model_name, step_cost, real_step = STEPS[name]
    bare, _ = step_cost(args.steps, None)
    costs = {"every step": step_cost(args.steps, 1), "every 100th": step_cost(args.steps, 100)}
    step = real_step(args.step_imgsz, args.batch, max(3, args.rounds // 4))
    size = f"{args.batch}x3x{args.step_imgsz}x{args.step_imgsz}"
    print(f"{name} {model_name} step, batch {size}, untraced; fixed cost over {args.steps} steps:")
    print(f"{'step':<14} {step * 1000:9.2f} ms")
    for label, (seconds, spans) in costs.items():
        cost = seconds - bare
        print(f"{label:<14} {cost * 1e6:9.1f} us/step  {(step + cost) / step:.4f}x  {spans} spans")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40, help="a multiple of 4 balances the square (40)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--diff-imgsz", type=int, default=0, help="also measure differences at this size")
    parser.add_argument(
        "--diff-rounds", type=int, default=0, help="rounds at --diff-imgsz (default 4x --rounds)"
    )
    parser.add_argument("--steps", type=int, default=300, help="steps per fixed-cost loop (300)")
    parser.add_argument("--step-imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch's intra-op threads (2)")
    parser.add_argument("--package", choices=("ultralytics", "yolov5", "both"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ("ultralytics", "yolov5") if args.package == "both" else (args.package,)
    clock = HookClock()
    for name in names:
        forwards(name, args, clock)
        print()
    for name in names:
        steps(name, args)


if __name__ == "__main__":
    main()
