"""The expectation mini-language of ``yolospan check`` (and `SpanList.check`).

An expectation counts the spans a selector matches and compares the count::

    forward[phase=stride_probe] == 1
    forward[phase=amp_check, input.shape=1x3x640x480] == 2
    Conv[layer.index=0, flops>0] >= 1
    forward[autocast=float16, device=cpu] == 0
    [phase=info_profile] == 2

Grammar (whitespace is allowed between tokens)::

    expectation := selector COMPARISON COUNT
    selector    := NAME [ "[" [ condition { "," condition } ] "]" ]  |  "[" ... "]"
    NAME        := "*" | WORD | QUOTED                  ("*" or no name: any name)
    condition   := "!" KEY                              (attribute absent)
                 | KEY                                  (attribute present)
                 | KEY RELATION value
    KEY         := a contract key with or without "yolospan." (phase, input.shape, output.0.shape)
                 | QUOTED                               (any other attribute key, verbatim)
    RELATION    := "=" | "==" | "!=" | "~" | ">" | ">=" | "<" | "<="
    value       := QUOTED | "[" [ value { "," value } ] "]" | BARE
    COMPARISON  := "==" | "!=" | ">=" | "<=" | ">" | "<"
    COUNT       := a non-negative integer

A BARE value is a run of characters other than whitespace, ``,``, ``[``, ``]`` and quotes,
read as: ``true``/``false`` → bool; an integer or a decimal number → number; dims joined by
``x`` (``1x3x640x480``, with ``*`` for any one dim and ``...`` for any run) → a shape pattern;
anything else → a string. QUOTED is ``'...'`` or ``"..."`` with backslash escapes and is
always a string. ``~`` matches a regular expression against the whole string value;
``>``, ``>=``, ``<``, ``<=`` compare numbers; ``!=`` also holds when the attribute is absent.
Nothing is evaluated as Python: values are parsed by the rules above only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from yolospan.errors import UserError
from yolospan.testing._query import (
    Absent,
    Compare,
    Condition,
    Equals,
    Matcher,
    Not,
    Present,
    Regex,
    Selector,
    key_for_path,
    matcher_for,
    suggestions,
)
from yolospan.testing._views import ScopeView

__all__ = ["COMPARISONS", "Expectation", "ExpectationError", "Outcome", "parse_expectation"]

COMPARISONS: Final[Mapping[str, Callable[[int, int], bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_RELATIONS: Final = ("==", "!=", ">=", "<=", "=", "~", ">", "<")
_WORD: Final = re.compile(r"[A-Za-z_][\w.:/-]*")
_PATH: Final = re.compile(r"[A-Za-z_][\w.]*")
_BARE: Final = re.compile(r"[^\s,\[\]'\"]+")
_INT: Final = re.compile(r"[-+]?\d+")
_FLOAT: Final = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+(?=[eE]))([eE][-+]?\d+)?")
_DIM: Final = r"(\d+|\*|\.\.\.)"
_SHAPE: Final = re.compile(rf"{_DIM}(x{_DIM})+")
_COUNT: Final = re.compile(r"\d+")


class ExpectationError(UserError):
    """An expectation that does not parse; the message quotes it and points at the column."""


@dataclass(frozen=True)
class Expectation:
    """``selector OP count``: how many spans the selector may match."""

    selector: Selector
    op: str
    count: int
    text: str = ""

    def describe(self) -> str:
        return f"{self.selector.describe()} {self.op} {self.count}"

    def evaluate(self, spans: ScopeView) -> Outcome:
        matches = spans.select(self.selector)
        return Outcome(self, matches, COMPARISONS[self.op](len(matches), self.count))


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    matches: ScopeView
    holds: bool

    @property
    def wants_more(self) -> bool:
        """True when more matches could have satisfied it (so near misses are worth showing)."""
        found, op, count = len(self.matches), self.expectation.op, self.expectation.count
        return (
            (op in ("==", ">=") and found < count)
            or (op == ">" and found <= count)
            or (op == "!=" and found == 0)
        )


def parse_expectation(text: str) -> Expectation:
    """Parse one expectation; ExpectationError names the problem and its column."""
    if len(text) > _MAX_EXPECTATION:
        raise ExpectationError(
            f"bad expectation {_shown(text)}: {len(text)} characters (limit {_MAX_EXPECTATION})"
        )
    try:
        return _Parser(text).expectation()
    except RecursionError:
        raise ExpectationError(f"bad expectation {_shown(text)}: nested too deeply") from None


_MAX_EXPECTATION = 4096


def _shown(text: str) -> str:
    """The expectation as messages quote it: a long one cut, so the message stays one short line."""
    return repr(text) if len(text) <= 80 else repr(text[:77]) + "..."


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # --- scanning ----------------------------------------------------------------------------

    def fail(self, message: str, at: int | None = None) -> ExpectationError:
        column = (self.pos if at is None else at) + 1
        return ExpectationError(f"bad expectation {_shown(self.text)}: {message} at column {column}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, literal: str) -> bool:
        self.skip_space()
        return self.text.startswith(literal, self.pos)

    def take(self, literal: str) -> bool:
        if self.peek(literal):
            self.pos += len(literal)
            return True
        return False

    def take_regex(self, pattern: re.Pattern[str]) -> str | None:
        self.skip_space()
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def take_one_of(self, options: tuple[str, ...]) -> str | None:
        return next((option for option in options if self.take(option)), None)

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos == len(self.text)

    def quoted(self) -> str | None:
        self.skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] not in "'\"":
            return None
        quote, start = self.text[self.pos], self.pos
        chars = []
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                chars.append(self.text[self.pos])
                self.pos += 1
            elif char == quote:
                return "".join(chars)
            else:
                chars.append(char)
        raise self.fail("unterminated string", start)

    # --- grammar -----------------------------------------------------------------------------

    def expectation(self) -> Expectation:
        if self.at_end():
            raise self.fail("empty expectation")
        selector = self.selector()
        self.skip_space()
        op = self.take_one_of(tuple(COMPARISONS))
        if op is None:
            hint = (
                "use == to compare the count" if self.peek("=") else "expected a comparison (== != >= <= > <)"
            )
            raise self.fail(hint)
        count = self.take_regex(_COUNT)
        if count is None:
            raise self.fail("expected a count (a non-negative integer)")
        if not self.at_end():
            raise self.fail("unexpected text after the count")
        return Expectation(selector, op, int(count), self.text)

    def selector(self) -> Selector:
        name: Matcher | None = None
        if not self.peek("["):
            start = self.pos
            if self.take("*"):
                name = None
            else:
                word = self.quoted()
                if word is None:
                    word = self.take_regex(_WORD)
                if word is None:
                    raise self.fail("expected a span name, '*' or '['", start)
                name = Equals(word)
        conditions: list[Condition] = []
        if self.take("[") and not self.take("]"):
            conditions.append(self.condition())
            while self.take(","):
                conditions.append(self.condition())
            if not self.take("]"):
                raise self.fail("expected ',' or ']'")
        return Selector(name, tuple(conditions))

    def condition(self) -> Condition:
        if self.take("!"):
            return Condition(self.key(), Absent())
        key = self.key()
        relation = self.take_one_of(_RELATIONS)
        if relation is None:
            return Condition(key, Present())
        start = self.pos
        value = self.value()
        return Condition(key, self.matcher(relation, value, start))

    def key(self) -> str:
        self.skip_space()
        start = self.pos
        quoted = self.quoted()
        if quoted is not None:
            return quoted
        path = self.take_regex(_PATH)
        if path is None:
            raise self.fail("expected an attribute key", start)
        key = key_for_path(path)
        if key is None:
            close = suggestions(path, paths=True)
            hint = (
                f" (did you mean {', '.join(close)}?)" if close else " (quote other attribute keys in full)"
            )
            raise self.fail(f"unknown attribute {path!r}{hint}", start)
        return key

    def value(self) -> Any:
        self.skip_space()
        start = self.pos
        quoted = self.quoted()
        if quoted is not None:
            return quoted
        if self.take("["):
            items = []
            if not self.take("]"):
                items.append(self.value())
                while self.take(","):
                    items.append(self.value())
                if not self.take("]"):
                    raise self.fail("expected ',' or ']' in the list")
            return items
        bare = self.take_regex(_BARE)
        if bare is None:
            raise self.fail("expected a value", start)
        return _interpret(bare)

    def matcher(self, relation: str, value: Any, start: int) -> Matcher:
        if relation in ("=", "=="):
            return matcher_for(value)
        if relation == "!=":
            return Not(value)
        if relation == "~":
            if not isinstance(value, str):
                raise self.fail("'~' needs a regular expression (quote it)", start)
            try:
                return Regex(re.compile(value))
            except re.error as error:
                raise self.fail(f"bad regular expression: {error}", start) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"'{relation}' needs a number", start)
        return Compare(relation, value)


def _interpret(bare: str) -> Any:
    if bare in ("true", "false"):
        return bare == "true"
    if _INT.fullmatch(bare):
        return int(bare)
    if _FLOAT.fullmatch(bare):
        return float(bare)
    if _SHAPE.fullmatch(bare):
        return [int(dim) if dim.isdigit() else dim for dim in bare.split("x")]
    return bare
