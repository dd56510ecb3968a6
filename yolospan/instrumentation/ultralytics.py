"""OpenTelemetry instrumentor for the upstream ``ultralytics`` package (8.x: YOLOv5u, YOLOv8, YOLO11).

    from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor

    UltralyticsInstrumentor().instrument(tracer_provider=provider)

or, with nothing in the code, ``opentelemetry-instrument yolo train model=yolov8n.yaml ...``.
Model creation, forwards and layers are traced as for ``yolov5`` (see `_model`); a training adds
``train_step``, ``epoch`` and ``val`` traces and the step metrics (see `_ultralytics_training`).
The package is AGPL-3.0: it is imported only when this instrumentor is applied, never by yolospan
itself.
"""

from __future__ import annotations

from collections.abc import Collection

from opentelemetry import metrics

from yolospan.instrumentation._base import UpstreamInstrumentor
from yolospan.instrumentation._model import ModelTracer, install_layers
from yolospan.instrumentation._patch import Patches
from yolospan.instrumentation._training import TrainingTracer
from yolospan.instrumentation._ultralytics_training import LOSS_NAMES, UltralyticsTraining

__all__ = ["SUPPORTED", "UltralyticsInstrumentor"]

SUPPORTED = ("ultralytics >= 8.1, < 8.4",)
"""The versions these wrappers were written against (8.3.253 is tested)."""

_TASKS = "ultralytics.nn.tasks"
_TRAINER = "ultralytics.engine.trainer"


class UltralyticsInstrumentor(UpstreamInstrumentor):
    """Spans for ultralytics' model creation, AMP check, forwards, layers and training."""

    _imgsz_parameter = "imgsz"
    _info_parameters = ("detailed", "verbose", "imgsz")
    training: UltralyticsTraining | None = None
    """The training wrappers and callbacks while instrumented (the bench drives them directly)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED

    def _apply(
        self,
        patches: Patches,
        tracer: ModelTracer,
        trace_every: int,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        tracer.wrap_models(patches, _TASKS, forward="BaseModel.forward")
        patches.wrap(
            "ultralytics.utils.checks", "check_amp", tracer.check_amp("ultralytics"), imported_by=(_TRAINER,)
        )
        engine = TrainingTracer(tracer, trace_every, meter_provider, LOSS_NAMES)
        training = self.training = UltralyticsTraining(engine)
        patches.wrap(_TASKS, "BaseModel.loss", training.loss)
        patches.wrap(_TRAINER, "BaseTrainer.train", training.train)
        patches.wrap(_TRAINER, "BaseTrainer._do_train", training.do_train)
        patches.wrap(_TRAINER, "BaseTrainer.optimizer_step", training.optimizer_step)
        patches.wrap(_TRAINER, "BaseTrainer.validate", training.validate)
        from ultralytics.nn import tasks  # type: ignore[import-not-found,import-untyped,unused-ignore]

        install_layers(patches, tasks.BaseModel)
