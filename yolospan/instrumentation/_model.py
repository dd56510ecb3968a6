"""What both upstream packages share: a model's creation, its forwards and its layers as spans.

Upstream's ``DetectionModel.__init__`` builds the layers, runs the stride probe (a direct
``self.forward`` of zeros), initialises the head and calls ``self.info()``, whose FLOPs come
from ``thop.profile`` on a deep copy. `ModelTracer` wraps those functions, opens the same spans
as yolospan's own `yolospan.create_model` and leaves every upstream result unchanged:

- ``__init__``: the ``model.init`` span; afterwards the model stays instrumented by the generic
  core (`yolospan.tracing.instrument`), so each later forward is a ``forward`` span.
- ``forward``: only the stride probe's call, made during ``__init__``, is routed through the
  module's ``__call__`` (inside a ``stride_probe`` phase), so the core's hooks see it.
- ``info``: the ``info_profile`` phase; inside it, ``thop.profile`` traces the copy it counts and
  reports upstream's own MACs (``yolospan.gflops`` as upstream prints it).
- ``fuse``: the ``fuse`` phase; check_amp: the ``amp_check`` phase with upstream's verdict.
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from torch import nn

from yolospan import attributes as A
from yolospan.tracing import (
    Instrumentation,
    Layer,
    instrument,
    instrumentation_of,
    invalidate_flops,
    phase,
    span,
    span_attributes,
    use_tracer_provider,
)

_log = logging.getLogger(__name__)


def rank_attributes() -> dict[str, AttributeValue]:
    """``yolospan.rank`` and ``yolospan.world_size`` when torch.distributed is initialised."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return {A.RANK: dist.get_rank(), A.WORLD_SIZE: dist.get_world_size()}
    except Exception:  # never let a rank lookup break upstream
        _log.debug("yolospan: could not read the distributed rank", exc_info=True)
    return {}


def upstream_layers(model: nn.Module) -> list[Layer]:
    """Upstream's own layer list: ``model.model[i]`` with its ``i``, ``f`` (from) and ``type``."""
    layers: list[Layer] = []
    for position, layer in enumerate(getattr(model, "model", ())):
        index = getattr(layer, "i", position)
        kind = str(getattr(layer, "type", type(layer).__name__)).rsplit(".", 1)[-1]
        source = getattr(layer, "f", -1)
        sources = (source,) if isinstance(source, int) else tuple(int(s) for s in source)
        layers.append(Layer(int(index), layer, kind, sources))
    return layers


def _traced_layers(self: nn.Module) -> list[Layer]:
    """Installed on upstream's model class while instrumented: the core's `LayeredModule` protocol."""
    return upstream_layers(self)


def model_name(model: nn.Module) -> str | None:
    """The config's file stem (``yolov5s``, ``yolov8n``), as upstream names the model in its summary."""
    yaml_file = getattr(model, "yaml_file", None)
    config = getattr(model, "yaml", None)
    if yaml_file is None and isinstance(config, Mapping):
        yaml_file = config.get("yaml_file")
    return Path(str(yaml_file)).stem if yaml_file else None


def _bind(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    """The value of parameter ``name`` (positional order ``names``, ``self`` excluded), else None."""
    if name in kwargs:
        return kwargs[name]
    position = names.index(name)
    return args[position] if position < len(args) else None


@dataclass
class _Init:
    model: nn.Module
    probed: bool = False


@dataclass
class _Info:
    layers: bool
    macs: float | None = None
    probe: int | None = None


@dataclass
class _Amp:
    scope: ExitStack = field(default_factory=ExitStack)
    layers: bool = False


_init: ContextVar[_Init | None] = ContextVar("yolospan_upstream_init", default=None)
_info: ContextVar[_Info | None] = ContextVar("yolospan_upstream_info", default=None)
_amp: ContextVar[_Amp | None] = ContextVar("yolospan_upstream_amp", default=None)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # upstream colours its prefixes


class _LogCapture(logging.Handler):
    """Upstream's own log lines during a check: its reason, in its words."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a record that cannot be formatted is not worth failing over
            self.messages.append(_ANSI.sub("", record.getMessage()).strip())


@dataclass(frozen=True)
class Settings:
    """What an instrumentor was asked for: layers, provider (None: the ambient one)."""

    layers: bool = False
    tracer_provider: trace.TracerProvider | None = None
    extra: Callable[[], Mapping[str, AttributeValue]] = dict


class ModelTracer:
    """The wrappers for one upstream package's model class; `ModelTracer.release` drops every hook."""

    def __init__(self, settings: Settings, *, imgsz_parameter: str, info_parameters: tuple[str, ...]) -> None:
        self.settings = settings
        self._imgsz_parameter = imgsz_parameter
        self._info_parameters = info_parameters
        self._models: weakref.WeakKeyDictionary[nn.Module, Instrumentation] = weakref.WeakKeyDictionary()

    # --- scopes ---------------------------------------------------------------------------------

    @contextmanager
    def scope(self) -> Iterator[None]:
        """The provider this instrumentor was given, and the run/rank attributes, for spans inside."""
        with ExitStack() as stack:
            if self.settings.tracer_provider is not None:
                stack.enter_context(use_tracer_provider(self.settings.tracer_provider))
            attrs = {**self.settings.extra(), **rank_attributes()}
            if attrs:
                stack.enter_context(span_attributes(attrs))
            yield

    def release(self) -> None:
        """Remove the core's hooks from every model this tracer instrumented."""
        for handle in list(self._models.values()):
            handle.remove()
        self._models.clear()

    def watch(self, model: nn.Module) -> None:
        """Keep ``model`` instrumented, so each of its forwards is a ``forward`` span."""
        if instrumentation_of(model) is None:
            self._models[model] = instrument(
                model, layers=self.settings.layers, tracer_provider=self.settings.tracer_provider
            )

    # --- wrappers (wrapt's signature) -----------------------------------------------------------

    def init(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``DetectionModel.__init__``: the ``model.init`` span around upstream's whole constructor."""
        if _init.get() is not None:  # a model built inside another's creation: one model.init is enough
            return wrapped(*args, **kwargs)
        with self.scope(), span(A.SPAN_MODEL_INIT) as root:
            token = _init.set(_Init(instance))
            try:
                result = wrapped(*args, **kwargs)
            finally:
                _init.reset(token)
            self._describe_model(root, instance)
        try:
            self.watch(instance)
        except Exception:
            _log.warning("yolospan: could not instrument %s", type(instance).__name__, exc_info=True)
        return result

    def _describe_model(self, root: trace.Span, model: nn.Module) -> None:
        if not root.is_recording():
            return
        try:
            attrs: dict[str, AttributeValue] = {
                A.MODEL_PARAMS: sum(p.numel() for p in model.parameters()),
                A.MODEL_LAYERS: len(getattr(model, "model", ())),
            }
            name = model_name(model)
            if name:
                attrs[A.MODEL_NAME] = name
            config = getattr(model, "yaml", None)
            if isinstance(config, Mapping) and isinstance(config.get("nc"), int):
                attrs[A.MODEL_NC] = config["nc"]
            stride = getattr(model, "stride", None)
            if stride is not None and getattr(stride, "numel", lambda: 0)() > 0:
                attrs[A.MODEL_STRIDE] = [int(s) for s in stride.tolist()]
            root.set_attributes(attrs)
        except Exception:
            _log.warning("yolospan: could not describe the model", exc_info=True)

    def forward(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Upstream's stride probe calls ``self.forward`` directly: route that one call through hooks."""
        state = _init.get()
        if state is None or state.probed or state.model is not instance:
            return wrapped(*args, **kwargs)
        state.probed = True
        scope = ExitStack()
        try:
            scope.enter_context(phase(A.SPAN_STRIDE_PROBE, module=instance, layers=self.settings.layers))
        except Exception:
            _log.warning("yolospan: could not trace the stride probe", exc_info=True)
            return wrapped(*args, **kwargs)
        with scope:
            return instance(*args, **kwargs)  # __call__ runs the hooks, then this wrapper's own forward

    def info(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``model.info()``: the ``info_profile`` phase; `profile` supplies upstream's FLOPs inside it."""
        state = _Info(self.settings.layers)
        with self.scope(), phase(A.SPAN_INFO_PROFILE) as current:
            token = _info.set(state)
            try:
                result = wrapped(*args, **kwargs)
            finally:
                _info.reset(token)
            if current.is_recording():
                try:
                    imgsz = _bind(self._info_parameters, args, kwargs, self._imgsz_parameter)
                    attrs = _profile_attributes(instance, state, 640 if imgsz is None else imgsz)
                    attrs.update(_reported(result))
                    current.set_attributes(attrs)
                except Exception:
                    _log.warning("yolospan: could not describe the info profile", exc_info=True)
        return result

    def fuse(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``model.fuse()``: the ``fuse`` phase (its own ``info_profile`` inside, as upstream)."""
        with self.scope(), phase(A.SPAN_FUSE) as current:
            before = _batchnorms(instance)
            result = wrapped(*args, **kwargs)
            try:
                invalidate_flops(instance)
                if current.is_recording():
                    current.set_attribute(A.FUSE_FOLDED, before - _batchnorms(instance))
            except Exception:
                _log.warning("yolospan: could not describe the fuse", exc_info=True)
        return result

    @contextmanager
    def amp_check(self, model: Any, logger: str) -> Iterator[tuple[trace.Span, _LogCapture]]:
        """The ``amp_check`` phase around upstream's ``check_amp(model)``, its log lines captured."""
        capture = _LogCapture()
        upstream_log = logging.getLogger(logger)
        state = _Amp(layers=self.settings.layers)
        with self.scope(), phase(A.SPAN_AMP_CHECK) as current:
            upstream_log.addHandler(capture)
            token = _amp.set(state)
            try:
                with state.scope:
                    yield current, capture
            finally:
                _amp.reset(token)
                upstream_log.removeHandler(capture)

    def check_amp(self, logger: str) -> Callable[..., Any]:
        """A wrapper for upstream's ``check_amp(model, ...)``: the ``amp_check`` phase around it,
        with the verdict it reached (`amp_verdict`) from what ``logger`` said."""

        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            model: Any = args[0] if args else kwargs.get("model")
            device = _device_type(model)
            with self.amp_check(model, logger) as (current, capture):
                result = wrapped(*args, **kwargs)
                if current.is_recording():
                    current.set_attributes(amp_verdict(result, device, capture.messages))
            return result

        return wrapper

    def wrap_models(self, patches: Any, module: str, *, forward: str) -> None:
        """Wrap a package's model lifecycle in ``module``: ``DetectionModel.__init__`` (the
        ``model.init`` phases), ``forward`` (the method its models' calls go through),
        ``BaseModel.info`` (``info_profile``) and ``BaseModel.fuse`` (``fuse``)."""
        patches.wrap(module, "DetectionModel.__init__", self.init)
        patches.wrap(module, forward, self.forward)
        patches.wrap(module, "BaseModel.info", self.info)
        patches.wrap(module, "BaseModel.fuse", self.fuse)

    def amp_model(self, model: object) -> None:
        """A copy the AMP check runs: traced until the check ends."""
        state = _amp.get()
        if state is None or not isinstance(model, nn.Module) or instrumentation_of(model) is not None:
            return
        try:
            state.scope.enter_context(instrument(model, layers=state.layers))
        except Exception:
            _log.warning("yolospan: could not trace the AMP check's forwards", exc_info=True)


_profile_patch: list[Any] = []  # [Patches, users]: thop.profile is wrapped once, whoever asks


def acquire_profile_patch() -> None:
    """Wrap ``thop.profile`` for the info profile (shared by both instrumentors, counted)."""
    from yolospan.instrumentation._patch import Patches

    if _profile_patch:
        _profile_patch[1] += 1
        return
    patches = Patches()
    patches.wrap("thop", "profile", _profile)
    _profile_patch[:] = [patches, 1]


def release_profile_patch() -> None:
    if not _profile_patch:
        return
    _profile_patch[1] -= 1
    if _profile_patch[1] == 0:
        _profile_patch[0].restore()
        _profile_patch.clear()


def _profile(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``thop.profile`` inside an info profile: trace the copy it counts, keep the MACs it returns."""
    state = _info.get()
    if state is None:
        return wrapped(*args, **kwargs)
    scope = ExitStack()
    try:
        model = args[0] if args else kwargs["model"]
        if isinstance(model, nn.Module) and instrumentation_of(model) is None:
            scope.enter_context(instrument(model, layers=state.layers))
    except Exception:
        _log.warning("yolospan: could not trace the info profile's forward", exc_info=True)
    with scope:
        result = wrapped(*args, **kwargs)
    try:
        inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        state.macs = float(result[0])
        state.probe = int(inputs[0].shape[-1]) if inputs else None
    except Exception:
        _log.debug("yolospan: thop.profile returned something unexpected", exc_info=True)
    return result


def _device_type(model: Any) -> str:
    try:
        return str(next(model.parameters()).device.type)
    except Exception:
        return "unknown"


def install_layers(patches: Any, model_class: type) -> None:
    """Let the core's ``layers=True`` find upstream's layer list (removed on uninstrument)."""
    patches.add(model_class, "traced_layers", _traced_layers)


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _profile_attributes(model: nn.Module, state: _Info, imgsz: Any) -> dict[str, AttributeValue]:
    params = sum(p.numel() for p in model.parameters())
    attrs: dict[str, AttributeValue] = {
        A.PARAMS: params,
        A.GRADIENTS: sum(p.numel() for p in model.parameters() if p.requires_grad),
        A.LAYERS: len(list(model.modules())),
    }
    height, width = (imgsz, imgsz) if isinstance(imgsz, (int, float)) else (imgsz[0], imgsz[1])
    if height == width:
        attrs[A.PROFILE_IMGSZ] = int(height)
    if state.macs is not None and state.probe:
        attrs[A.PROFILE_INPUT] = state.probe
        gflops = state.macs * 2 / 1e9 * height / state.probe * width / state.probe
        attrs[A.GFLOPS] = round(gflops, 1)
    return attrs


def _reported(result: Any) -> dict[str, AttributeValue]:
    """What ultralytics' ``info()`` returns: (layers, parameters, gradients, GFLOPs) as it printed them."""
    if not (isinstance(result, tuple) and len(result) == 4):
        return {}  # yolov5's info() returns nothing: the attributes come from the model and thop
    layers, params, gradients, gflops = result
    attrs: dict[str, AttributeValue] = {
        A.LAYERS: int(layers),
        A.PARAMS: int(params),
        A.GRADIENTS: int(gradients),
    }
    if gflops:
        attrs[A.GFLOPS] = round(float(gflops), 1)
    return attrs


def amp_verdict(result: object, device: str, messages: list[str]) -> dict[str, AttributeValue]:
    """Upstream's answer (``yolospan.amp.enabled``) and the verdict with upstream's reason."""
    enabled = bool(result)
    said = " | ".join(m for m in messages if "AMP" in m or "check" in m.lower()) or None
    if device in ("cpu", "mps"):
        verdict, reason = "skipped", f"upstream uses AMP only on CUDA devices; the model is on {device}"
    elif said is not None and "skipped" in said.lower():
        verdict, reason = "skipped", said
    else:
        verdict = "passed" if enabled else "failed"
        reason = said or f"upstream's check_amp returned {enabled}"
    return {A.AMP_RESULT: verdict, A.AMP_REASON: reason, A.AMP_ENABLED: enabled}
