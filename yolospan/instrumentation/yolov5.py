"""OpenTelemetry instrumentor for the upstream ``yolov5`` package (pip ``yolov5``, ultralytics/yolov5 v7).

    from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor

    YOLOv5Instrumentor().instrument(tracer_provider=provider)
    model = yolov5.models.yolo.DetectionModel("yolov5s.yaml")  # model.init > stride_probe, info_profile

or, with nothing in the code, ``opentelemetry-instrument python -m yolov5.train ...``: a training
adds ``train_step``, ``epoch`` and ``val`` traces and the step metrics (see `_yolov5_training`).
The package is AGPL-3.0: it is imported only when this instrumentor is applied, never by yolospan
itself, and its scripts (``train.py``, ``val.py``) only when upstream imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import metrics

from yolospan.instrumentation._base import UpstreamInstrumentor
from yolospan.instrumentation._model import ModelTracer, install_layers
from yolospan.instrumentation._patch import Patches
from yolospan.instrumentation._training import TrainingTracer
from yolospan.instrumentation._yolov5_training import LOSS_NAMES, YOLOv5Training

__all__ = ["SUPPORTED", "YOLOv5Instrumentor"]

SUPPORTED = ("yolov5 >= 7.0.13, < 7.1",)
"""The versions these wrappers were written against (7.0.14 is tested)."""

_MODELS = "yolov5.models.yolo"
_TORCH_UTILS = "yolov5.utils.torch_utils"
_TRAIN_SCRIPTS = ("yolov5.train", "yolov5.segment.train", "__main__")
"""Modules that import ``check_amp``, ``smart_optimizer`` and ``smart_resume`` by name."""


class YOLOv5Instrumentor(UpstreamInstrumentor):
    """Spans for ``yolov5``'s model creation (stride probe, info profile, fuse), AMP check, forwards
    and ``train.py``'s training."""

    _imgsz_parameter = "img_size"
    _info_parameters = ("verbose", "img_size")
    training: YOLOv5Training | None = None
    """The training wrappers while instrumented."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED

    def _apply(
        self,
        patches: Patches,
        tracer: ModelTracer,
        trace_every: int,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        tracer.wrap_models(patches, _MODELS, forward="DetectionModel.forward")
        patches.wrap(
            "yolov5.utils.general", "check_amp", tracer.check_amp("yolov5"), imported_by=_TRAIN_SCRIPTS
        )
        patches.wrap("yolov5.models.common", "AutoShape.__init__", _autoshape(tracer))
        from yolov5.models import yolo  # type: ignore[import-not-found,import-untyped,unused-ignore]

        install_layers(patches, yolo.BaseModel)
        engine = TrainingTracer(tracer, trace_every, meter_provider, LOSS_NAMES)
        training = self.training = YOLOv5Training(engine)
        patches.wrap("yolov5.utils.callbacks", "Callbacks.run", training.dispatch)
        patches.wrap("yolov5.utils.loss", "ComputeLoss.__call__", training.loss)
        patches.wrap(_TORCH_UTILS, "smart_optimizer", training.optimizer, imported_by=_TRAIN_SCRIPTS)
        patches.wrap(_TORCH_UTILS, "smart_resume", training.resume, imported_by=_TRAIN_SCRIPTS)
        patches.wrap_when_imported("yolov5.train", "train", training.train)
        patches.wrap_when_imported("yolov5.val", "run", training.validate)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self.training is not None:
            self.training.release()
            self.training = None
        super()._uninstrument(**kwargs)


Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _autoshape(tracer: ModelTracer) -> Wrapper:
    """check_amp wraps a copy of the model in AutoShape: trace that copy's two forwards."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tracer.amp_model(args[0] if args else kwargs.get("model"))
        return wrapped(*args, **kwargs)

    return wrapper
