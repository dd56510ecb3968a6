"""A module's call slot while yolospan traces it: ``nn.Module.__call__`` runs `CallSlot` instead of
``_call_impl``.

torch runs a module compiled in place through its per-instance ``_compiled_call_impl``; yolospan
puts a `CallSlot` there, which hands the call to the instrumentation that owns it (`Runner`). torch
leaves that slot out of pickles and deep copies, so a copy of an instrumented module is a plain
module; a DataParallel replica shares the slot and is called through untraced; TorchScript is
told to ignore it; and while torch compiles or traces (`stepping_aside`) the slot only calls
through.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Protocol

import torch
from opentelemetry.util.types import AttributeValue
from torch import nn

__all__ = ["CallSlot", "Runner", "is_compiled", "let_torchscript_skip_the_slot", "stepping_aside", "unlink"]


class Runner(Protocol):
    """What owns a slot: runs one call of the slot's module inside its frame (`Instrumentation`;
    private there, as it is no part of the handle's API)."""

    def _run(
        self, target: CallSlot, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


def stepping_aside() -> bool:
    """True while torch compiles (dynamo) or traces (``torch.jit.trace``) the call.

    (TorchScript never runs this: ``torch.jit.script`` ignores the slot yolospan uses.)
    """
    return torch.compiler.is_compiling() or torch._C._get_tracing_state() is not None


class CallSlot:
    """A module's ``_compiled_call_impl`` while it is instrumented: runs its call inside yolospan's frame.

    Holds the module weakly and caches its call signatures. torch drops the slot from pickles
    and deep copies; a DataParallel replica, which shares the slot, is called through untraced.
    A module instrumented twice (as a layer and on its own) chains the two through ``previous``.
    """

    __slots__ = ("calls", "counts", "instrumentation", "layer", "module", "name", "previous", "static")

    def __init__(
        self,
        instrumentation: Runner,
        module: nn.Module,
        name: str,
        static: dict[str, AttributeValue],
        *,
        layer: bool,
    ) -> None:
        self.instrumentation = instrumentation
        self.module = weakref.ref(module)
        self.name = name
        self.static = static
        self.layer = layer
        self.previous: Any = module.__dict__.get("_compiled_call_impl")  # a module compiled in place
        self.calls: dict[tuple[Any, ...], Any] = {}  # call signature → the tracer's per-signature record
        # A compiled call runs its layers inside a graph, where no counting hook fires: such a
        # call has no FLOPs rather than a wrong count.
        self.counts = not is_compiled(module) and (
            self.previous is None or isinstance(self.previous, CallSlot)
        )

    def call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The module's own call: what ran before yolospan took the slot, else ``_call_impl``."""
        previous = self.previous
        if previous is None:
            return module._call_impl(*args, **kwargs)  # type: ignore[no-untyped-call]
        if isinstance(previous, CallSlot):  # another instrumentation of the same module
            if stepping_aside():
                return previous.call(module, args, kwargs)
            return previous.enter(module, args, kwargs)
        return previous(*args, **kwargs)

    def enter(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Trace the call if ``module`` is this slot's own module (not a replica sharing it)."""
        if module is not self.module():
            return self.call(module, args, kwargs)
        return self.instrumentation._run(self, module, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if stepping_aside():  # dynamo traces through this; torch.jit.trace records only ops
            return self.call(self.module(), args, kwargs)  # type: ignore[arg-type]
        # nn.Module.__call__ passes no self: read it from its frame, since a DataParallel replica
        # shares this slot with the original module.
        caller = sys._getframe(1).f_locals.get("self")
        return self.enter(caller if isinstance(caller, nn.Module) else self.module(), args, kwargs)  # type: ignore[arg-type]


def is_compiled(module: nn.Module) -> bool:
    """``torch.compile(model)``'s wrapper (dynamo is imported by then, or it cannot exist)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return eval_frame is not None and isinstance(module, eval_frame.OptimizedModule)


def let_torchscript_skip_the_slot() -> None:
    """TorchScript types every instance attribute; ``_compiled_call_impl``'s class annotation
    (``Callable | None``) is not one it can resolve, so ``torch.jit.script`` of any module with
    that slot set fails (``module.compile()`` too). Add the slot to the attributes TorchScript
    already skips, beside the hook dictionaries: it is never part of a scripted module."""
    from torch.jit import _recursive

    ignored: list[str] = _recursive.ignored_attributes
    if "_compiled_call_impl" not in ignored:
        ignored.append("_compiled_call_impl")


def unlink(module: nn.Module, target: CallSlot) -> None:
    """Take ``target`` out of ``module``'s slot, or out of the chain of instrumentations in it."""
    slot = module.__dict__.get("_compiled_call_impl")
    if slot is target:
        if target.previous is None:
            del module.__dict__["_compiled_call_impl"]
        else:
            module.__dict__["_compiled_call_impl"] = target.previous
        return
    while isinstance(slot, CallSlot):
        if slot.previous is target:
            slot.previous = target.previous
            return
        slot = slot.previous
