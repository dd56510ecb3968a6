"""The ``activation:`` key of a config, read by a small grammar and never evaluated.

Upstream evaluates the key as Python (``nn.LeakyReLU(0.1)``) and stores the result as a class-wide
default, so one config changes every model built after it. Here the text must be a call of a known
activation with literal numeric (or boolean) arguments; it becomes an `Activation` on that config's
spec, and the builder gives it to that model's convs only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from yolospan.yolo.errors import ConfigError

__all__ = ["ACTIVATIONS", "Activation", "parse_activation"]

_NUMBER = "a number"
_BOOL = "True or False"

# name -> (class, its arguments in constructor order with the kind each takes)
ACTIVATIONS: dict[str, tuple[Callable[..., nn.Module], tuple[tuple[str, str], ...]]] = {
    "SiLU": (nn.SiLU, (("inplace", _BOOL),)),
    "ReLU": (nn.ReLU, (("inplace", _BOOL),)),
    "ReLU6": (nn.ReLU6, (("inplace", _BOOL),)),
    "LeakyReLU": (nn.LeakyReLU, (("negative_slope", _NUMBER), ("inplace", _BOOL))),
    "ELU": (nn.ELU, (("alpha", _NUMBER), ("inplace", _BOOL))),
    "Hardswish": (nn.Hardswish, (("inplace", _BOOL),)),
    "Mish": (nn.Mish, (("inplace", _BOOL),)),
    "GELU": (nn.GELU, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "Tanh": (nn.Tanh, ()),
    "Identity": (nn.Identity, ()),
}
"""The activations a config may name, written ``nn.Name(args)`` or ``Name(args)``."""

_CALL = re.compile(r"\s*(?:nn\.)?([A-Za-z][A-Za-z0-9]*)\s*(?:\((.*)\))?\s*", re.DOTALL)
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*", re.DOTALL)
_LITERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Activation:
    """A parsed ``activation:`` value: which class, with which keyword arguments."""

    name: str
    kwargs: tuple[tuple[str, float | bool], ...]

    def make(self) -> nn.Module:
        factory, _ = ACTIVATIONS[self.name]
        return factory(**dict(self.kwargs))

    def __str__(self) -> str:
        return f"nn.{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in self.kwargs) + ")"


def parse_activation(what: str, text: object) -> Activation:
    """``nn.LeakyReLU(0.1)`` → ``Activation('LeakyReLU', (('negative_slope', 0.1),))``; anything else
    that is not a known activation with literal arguments is a `ConfigError` naming ``what``."""
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be an activation such as nn.LeakyReLU(0.1), got {text!r}")
    match = _CALL.fullmatch(text)
    if match is None or match.group(1) not in ACTIVATIONS:
        known = ", ".join(f"nn.{name}" for name in ACTIVATIONS)
        raise ConfigError(f"{what}: {text!r} is not a known activation (known: {known})")
    name, inside = match.group(1), match.group(2)
    _, params = ACTIVATIONS[name]
    kwargs: dict[str, float | bool] = {}
    items = (inside or "").split(",")
    if not items[-1].strip():
        items.pop()  # nn.ReLU() and a trailing comma
    keywords_started = False
    for position, item in enumerate(items):
        keyword = _KEYWORD.fullmatch(item)
        if keyword is not None:
            keywords_started = True
            key, raw = keyword.group(1), keyword.group(2)
            if key not in dict(params):
                allowed = ", ".join(p for p, _ in params) or "no arguments"
                raise ConfigError(f"{what}: nn.{name} has no argument {key!r} (it takes {allowed})")
        else:
            if keywords_started:
                raise ConfigError(f"{what}: a positional argument follows a keyword argument in {text!r}")
            if position >= len(params):
                raise ConfigError(
                    f"{what}: nn.{name} takes at most {len(params)} argument(s), got {len(items)} in {text!r}"
                )
            key, raw = params[position][0], item.strip()
        if key in kwargs:
            raise ConfigError(f"{what}: argument {key!r} given twice in {text!r}")
        kwargs[key] = _literal(what, text, key, dict(params)[key], raw)
    return Activation(name, tuple(kwargs.items()))


def _literal(what: str, text: str, key: str, kind: str, raw: str) -> float | bool:
    if kind == _BOOL:
        if raw in ("True", "False"):
            return raw == "True"
    elif _LITERAL.fullmatch(raw):
        value = float(raw)
        if math.isfinite(value):
            return value
    raise ConfigError(f"{what}: argument {key} must be {kind}, got {raw!r} in {text!r}")
