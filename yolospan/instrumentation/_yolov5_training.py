"""Where a yolov5 ``train.py`` training's spans begin and end: its ``Callbacks`` hooks, and wrappers.

``train.py`` announces its progress through a ``yolov5.utils.callbacks.Callbacks`` object. Every
hook it runs goes through ``Callbacks.run``, which is wrapped: our part runs after upstream's own
actions, as a callback registered last would. Registering actions instead would miss trainings:
``main``'s default ``Callbacks()`` is made when ``train.py`` is imported, possibly before
instrumenting, and ``Callbacks`` cannot remove an action again.

=========================== ======= ==================================================
hook                        ranks   here
=========================== ======= ==================================================
on_pretrain_routine_start   all     a run opens (one a previous training left open ends)
on_train_epoch_start        all     the ``epoch`` root opens
on_train_batch_start        all     the ``train_step`` root opens
on_train_batch_end          0       the step ends: batch shape, metrics
on_fit_epoch_end            0       the epoch ends: mean losses, lr, fitness
on_train_end                0       the run ends
=========================== ======= ==================================================

Other ranks run only the first three: there a step ends when the next step or epoch begins, and
the last step, epoch and the run when the process exits (``atexit``; the uncaught exception that
ended it, if one did, marks them ERROR). ``yolov5.train.train`` is wrapped too, so a training
called in-process (``yolov5.train.run``) ends its run however it ends, with its exception.

Wrapped where no hook marks the boundary: ``ComputeLoss.__call__`` (``loss``: box, obj, cls),
``smart_optimizer`` (torch's step hooks on the optimizer it returns: ``optimizer_step``, only on
the batches where ``train.py`` steps it), ``smart_resume`` (the first epoch of a resumed training)
and ``yolov5.val.run`` (``val``: no hook brackets it, ``on_val_end`` runs only with plots).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.instrumentation._training import Losses, Run, TrainingTracer, Wrapped, optimizer_lr

_log = logging.getLogger(__name__)

LOSS_NAMES = ("box", "obj", "cls")
"""yolov5's loss items, in its order (``ComputeLoss`` returns them as its second value)."""

Hook = Callable[[tuple[Any, ...], dict[str, Any]], None]


class YOLOv5Training:
    """The wrappers for yolov5's ``train.py``, and what each of its hooks means here."""

    def __init__(self, engine: TrainingTracer) -> None:
        self.engine = engine
        self._hooks: dict[str, Hook] = {
            "on_pretrain_routine_start": self._pretrain_start,
            "on_train_epoch_start": self._epoch_start,
            "on_train_batch_start": self._batch_start,
            "on_train_batch_end": self._batch_end,
            "on_train_epoch_end": self._epoch_end,
            "on_fit_epoch_end": self._fit_epoch_end,
            "on_train_end": self._train_end,
        }

    def release(self) -> None:
        """Uninstrumenting: end a run still open here and forget the exit handler."""
        run = self.engine.current()
        if run is not None:
            self._close(run)
        atexit.unregister(self._at_exit)

    # --- the run ----------------------------------------------------------------------------------

    def train(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``yolov5.train.train``: the run it opened ends with it, with the exception that ended it."""
        outer = self.engine.current()
        error: BaseException | None = None
        try:
            return wrapped(*args, **kwargs)
        except BaseException as raised:
            error = raised
            raise
        finally:
            run = self.engine.current()
            if run is not None and run is not outer:
                self._close(run, error)

    def _close(self, run: Run, error: BaseException | None = None) -> None:
        atexit.unregister(self._at_exit)
        self.engine.close_run(run, error)

    def _at_exit(self) -> None:
        """A rank other than 0, or a script that raised: end what is open before the SDK shuts down."""
        run = self.engine.current()
        if run is None:
            return
        error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        self.engine.close_run(run, error if isinstance(error, BaseException) else None)

    # --- hooks ------------------------------------------------------------------------------------

    def dispatch(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``Callbacks.run(hook, *args, **kwargs)``: upstream's actions, then ours for that hook."""
        result = wrapped(*args, **kwargs)
        try:
            hook = self._hooks.get(args[0]) if args else None
            if hook is not None:
                hook(args[1:], kwargs)
        except Exception:
            _log.warning("yolospan: could not trace yolov5's %r hook", args[:1], exc_info=True)
        return result

    def _pretrain_start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.engine.current()
        if run is not None:  # a training that returned early (stop_training) or raised
            self._close(run)
        self.engine.open_run()
        atexit.register(self._at_exit)

    def _epoch_start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.engine.current()
        if run is None:
            return
        self.engine.end_step(run)  # ranks other than 0: no batch end, no fit epoch end
        self.engine.end_epoch(run)
        self.engine.start_epoch(run, run.next_epoch)

    def _batch_start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.engine.current()
        if run is None:
            return
        self.engine.end_step(run)
        self.engine.start_step(run, run.epoch_index, optimizer_lr(run.optimizer))

    def _batch_end(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``(model, ni, imgs, targets, paths, mloss)``: the images as the model got them."""
        run = self.engine.current()
        if run is None:
            return
        step = run.step
        if step is not None and step.traced and len(args) > 2:
            try:
                step.root.set_attribute(A.BATCH_SHAPE, list(args[2].shape))
            except Exception:
                _log.debug("yolospan: unexpected batch", exc_info=True)
        self.engine.end_step(run)

    def _epoch_end(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.engine.current()
        if run is not None:
            self.engine.end_step(run)

    def _fit_epoch_end(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``(log_vals, epoch, best_fitness, fi)``, after the epoch's validation."""
        run = self.engine.current()
        if run is not None:
            self.engine.end_epoch(run, lambda: _epoch_attributes(args))

    def _train_end(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.engine.current()
        if run is not None:
            self._close(run)

    # --- wrappers ---------------------------------------------------------------------------------

    def loss(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``ComputeLoss.__call__(p, targets)`` in a step: the ``loss`` span, its box/obj/cls items."""
        run = self.engine.current()
        step = run.step if run is not None else None
        if run is None or step is None:
            return wrapped(*args, **kwargs)
        try:
            preds = args[0] if args else kwargs["p"]
            targets = args[1] if len(args) > 1 else kwargs["targets"]
            attrs: dict[str, AttributeValue] = {A.BATCH_TARGETS: int(targets.shape[0])}
            lr = optimizer_lr(run.optimizer)  # the warm-up has set this step's rate by now
            if lr is not None:
                attrs[A.LR] = lr
            self.engine.describe_batch(step, int(preds[0].shape[0]), attrs)
        except Exception:
            _log.debug("yolospan: unexpected loss arguments", exc_info=True)
        return self.engine.loss(step, lambda: wrapped(*args, **kwargs))

    def optimizer(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``smart_optimizer``: the run's optimizer, its steps timed by torch's own step hooks."""
        optimizer = wrapped(*args, **kwargs)
        run = self.engine.current()
        if run is None:
            return optimizer
        try:
            run.optimizer = optimizer
            run.scope.callback(optimizer.register_step_pre_hook(self._before_step).remove)
            run.scope.callback(optimizer.register_step_post_hook(self._after_step).remove)
        except Exception:
            _log.warning("yolospan: could not trace the optimizer's steps", exc_info=True)
        return optimizer

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        run = self.engine.current()
        step = run.step if run is not None else None
        if run is None or step is None or step.optimizer is not None:
            return
        try:
            accumulated = run.steps_since_optimizer
            scope = ExitStack()
            current = scope.enter_context(self.engine.optimizer_step(run))
            step.optimizer = scope
            if current.is_recording():
                current.set_attribute(A.ACCUMULATE, accumulated)
        except Exception:
            _log.warning("yolospan: could not start the optimizer step span", exc_info=True)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        run = self.engine.current()
        step = run.step if run is not None else None
        if step is None or step.optimizer is None:
            return
        scope, step.optimizer = step.optimizer, None
        try:
            scope.close()
        except Exception:
            _log.warning("yolospan: could not end the optimizer step span", exc_info=True)

    def resume(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``smart_resume`` returns ``(best_fitness, start_epoch, epochs)``: where the epochs continue."""
        result = wrapped(*args, **kwargs)
        run = self.engine.current()
        if run is not None:
            try:
                run.next_epoch = int(result[1])
            except Exception:
                _log.debug("yolospan: unexpected smart_resume result", exc_info=True)
        return result

    def validate(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``yolov5.val.run`` in a training: one ``val`` trace; the model it validates is traced meanwhile."""
        run = self.engine.current()
        if run is None:
            return wrapped(*args, **kwargs)
        attrs: dict[str, AttributeValue] = {A.EPOCH: run.epoch_index}
        with contextlib.suppress(Exception):
            attrs[A.VAL_IMAGES] = len(kwargs["dataloader"].dataset)
        with self.engine.validation(kwargs.get("model"), attrs) as current:
            result = wrapped(*args, **kwargs)
            try:  # ((P, R, mAP50, mAP50-95, box, obj, cls), maps, times)
                losses = _losses(result[0][4:7])
                run.metrics.record_validation(losses)
                if current.is_recording():
                    current.set_attributes(losses.attributes())
            except Exception:
                _log.warning("yolospan: could not describe the validation", exc_info=True)
        return result


def _losses(values: Sequence[Any]) -> Losses:
    if len(values) != len(LOSS_NAMES):
        raise ValueError(f"expected {len(LOSS_NAMES)} loss values, got {len(values)}")
    return Losses(tuple((name, float(value)) for name, value in zip(LOSS_NAMES, values, strict=True)))


def _epoch_attributes(args: tuple[Any, ...]) -> dict[str, AttributeValue]:
    """From ``on_fit_epoch_end``'s values: mean losses (3), P, R, mAPs, val losses (7), lr per group."""
    attrs: dict[str, AttributeValue] = {}
    values = list(args[0]) if args else []
    if len(values) >= len(LOSS_NAMES):
        attrs.update(_losses(values[: len(LOSS_NAMES)]).attributes())
    if len(values) > 10:
        attrs[A.LR] = float(values[10])  # the first group's rate during the epoch, before the scheduler
    if len(args) > 3:
        fitness = args[3]
        attrs[A.FITNESS] = float(fitness.item() if hasattr(fitness, "item") else fitness)
    return attrs
