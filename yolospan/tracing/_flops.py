"""FLOPs of a module call by thop's per-module rules, applied to the call's real shapes.

thop's own ``profile`` needs a model copy and an extra forward. Here the same rules run as
forward hooks during the traced forward itself, only while a call's signature is not yet cached,
so a steady stream of same-shaped forwards pays nothing for counting.

Two rules are yolospan's own, because thop's changed between releases and upstream YOLOv5's
published figures were made with the older ones: nearest upsampling is charged one operation per
output element (yolov5s: 41,563,136 FLOPs for a 32x32 image, 16.6 GFLOPs at 640), where
ultralytics-thop 2.1.2 and later charge it nothing; and ``nn.MultiheadAttention`` is charged
nothing (yolov5s-transformer: 16.4 GFLOPs), where 2.1.2 and later added a rule for it. With them,
the counts are the same under every thop release that pyproject.toml allows. `thop_custom_ops`
hands the same rules to ``thop.profile``. PyTorch's FlopCounterMode (``flops=("thop", "torch")``)
counts the attention's matrix products for whoever wants them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from yolospan.tracing._hook import CopiedAsInert

_log = logging.getLogger(__name__)

Rule = Callable[[nn.Module, tuple[Any, ...], Any], Any]
_MISSING = object()
_rules: dict[type, Rule | None] = {}


def _thop_tables() -> tuple[dict[type, Rule], Rule]:
    from thop.profile import register_hooks, zero_ops

    return register_hooks, zero_ops


def _count_upsample(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    """Nearest: one operation per output element; every other mode by thop's rule (stable across releases)."""
    if getattr(module, "mode", None) == "nearest":
        module.total_ops += output.numel()
        return
    from thop.vision.basic_hooks import count_upsample

    count_upsample(module, args, output)


def _count_nothing(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    """Charged nothing, as thop before 2.1.2 (and so upstream YOLOv5's published GFLOPs) did."""


_OWN: dict[type, Rule] = {
    nn.MultiheadAttention: _count_nothing,
    nn.Upsample: _count_upsample,
    nn.UpsamplingNearest2d: _count_upsample,
    nn.UpsamplingBilinear2d: _count_upsample,
}
"""yolospan's rules, found before thop's at each step of a type's MRO."""


def rule_for(module_type: type) -> Rule | None:
    """The rule for a type, resolved through its MRO as thop does; None for zero-cost or unknown types."""
    if module_type in _rules:
        return _rules[module_type]
    table, zero_ops = _thop_tables()
    found: Rule | None = None
    for klass in module_type.__mro__:
        if klass in _OWN:
            found = _OWN[klass]
            break
        if klass in table:
            found = table[klass]
            break
    rule = None if found is zero_ops else found
    _rules[module_type] = rule
    return rule


def thop_custom_ops(root: nn.Module) -> dict[type, Rule]:
    """``custom_ops`` for ``thop.profile(root, ...)`` so that it counts with yolospan's own rules.

    thop looks custom rules up by exact type, so every type under ``root`` that resolves to one
    of yolospan's rules is listed.
    """
    return {
        type(module): rule
        for module in root.modules()
        if (rule := rule_for(type(module))) is not None and rule in _OWN.values()
    }


def macs(module: nn.Module, rule: Rule, args: tuple[Any, ...], output: Any) -> int:
    """Run a thop rule against the real module; thop writes its count into ``module.total_ops``."""
    store = module.__dict__
    # Inside ``thop.profile`` (upstream's model summary) the module also has thop's own
    # ``total_ops`` buffer: set aside while the rule runs, so neither count reaches the other.
    buffers: dict[str, Any] | None = store.get("_buffers")
    thops = buffers.pop("total_ops", _MISSING) if buffers is not None else _MISSING
    previous = store.get("total_ops", _MISSING)
    store["total_ops"] = 0
    try:
        rule(module, args, output)
        return int(store["total_ops"])
    finally:
        if previous is _MISSING:
            store.pop("total_ops", None)
        else:
            store["total_ops"] = previous
        if thops is not _MISSING and buffers is not None:
            buffers["total_ops"] = thops


class _Count(CopiedAsInert):
    """A counting forward hook: reports 2 x MACs of each call made on ``thread`` to ``sink``.

    Calls on other threads are not counted: their forwards have counters of their own, or none
    when their FLOPs are already known. A copy of the module gets an inert no-op instead.
    """

    __slots__ = ("rule", "sink", "thread")

    def __init__(self, rule: Rule, sink: Callable[[int], None], thread: int) -> None:
        self.rule = rule
        self.sink = sink
        self.thread = thread

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if torch.compiler.is_compiling() or threading.get_ident() != self.thread:
            return
        if kwargs:  # ``conv(input=x)``: thop's rules read the inputs positionally
            args = (*args, *kwargs.values())
        try:
            self.sink(2 * macs(module, self.rule, args, output))
        except Exception:  # a counting rule must never break the model's forward
            _log.warning("yolospan: FLOPs rule failed for %s", type(module).__name__, exc_info=True)


def attach_counters(root: nn.Module, sink: Callable[[int], None], thread: int) -> list[RemovableHandle]:
    """Hook every module under ``root`` that thop charges for; each call on ``thread`` reports 2 x MACs."""
    handles: list[RemovableHandle] = []
    for module in root.modules():
        rule = rule_for(type(module))
        if rule is None:
            continue
        # prepend: the count must land before any hook that reads it.
        hook = _Count(rule, sink, thread)
        handles.append(module.register_forward_hook(hook, prepend=True, with_kwargs=True))
    return handles
