"""FLOPs of a module call by thop's per-module rules, applied to the call's real shapes.

thop's own ``profile`` needs a model copy and an extra forward. Here the same rules run as
forward hooks during the traced forward itself, only while a call's signature is not yet cached,
so a steady stream of same-shaped forwards pays nothing for counting.
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


def rule_for(module_type: type) -> Rule | None:
    """thop's rule for a type, resolved through its MRO as thop does; None for zero-cost or unknown types."""
    if module_type in _rules:
        return _rules[module_type]
    table, zero_ops = _thop_tables()
    found: Rule | None = None
    for klass in module_type.__mro__:
        if klass in table:
            found = table[klass]
            break
    rule = None if found is zero_ops else found
    _rules[module_type] = rule
    return rule


def macs(module: nn.Module, rule: Rule, args: tuple[Any, ...], output: Any) -> int:
    """Run a thop rule against the real module; thop writes its count into ``module.total_ops``."""
    store = module.__dict__
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
