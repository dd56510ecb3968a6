"""Selectors: which spans a query or an expectation means, and how a near miss differs.

A selector is a span name plus conditions on attributes. Conditions are built from plain
Python values (the query API) or parsed from text (`yolospan.testing._expect`); both end up
as the same matcher objects, so ``spans.one(...)`` and ``yolospan check`` agree on every rule:

- ``None`` matches an absent attribute;
- a callable is a predicate, called with the attribute's plain value when it is present;
- a compiled regular expression must match the whole string value;
- a list or tuple is a shape pattern: ints match exactly, ``"*"`` any one dimension,
  ``"..."`` any run of dimensions (also none), and a callable element is a predicate;
- anything else must be equal (``True`` never equals ``1``).

Keyword shorthands are derived from `yolospan.attributes`, so they follow the span contract
without a second list: the key without the ``yolospan.`` prefix, dots as underscores
(``phase``, ``input_shape``, ``layer_index``, ``output_0_shape``, ``amp_max_abs_diff``).
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from yolospan import attributes as A

__all__ = [
    "MISSING",
    "Condition",
    "Difference",
    "Selector",
    "build_selector",
    "condition_for",
    "display_key",
    "format_value",
    "key_for_path",
    "key_for_shorthand",
    "shorthands",
]

_PREFIX: Final = A.NAMESPACE + "."
_INDEX_SENTINEL: Final = 987_654_321


class _Missing:
    """The value of an attribute a span does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


# --- keys -------------------------------------------------------------------------------------


def _contract_keys() -> list[str]:
    values = (getattr(A, name) for name in A.__all__ if name.isupper())
    return [v for v in values if isinstance(v, str) and v.startswith(_PREFIX) and "{" not in v]


def _indexed_templates() -> list[str]:
    """``yolospan.output.{}.shape`` etc., read off the contract's ``*_key`` functions."""
    templates = []
    for name in A.__all__:
        function = getattr(A, name)
        if name.endswith("_key") and callable(function):
            key = str(function(_INDEX_SENTINEL))
            templates.append(key.replace(str(_INDEX_SENTINEL), "{}"))
    return templates


def _shorthand(key: str) -> str:
    return key.removeprefix(_PREFIX).replace(".", "_")


_KEYS: Final = frozenset(_contract_keys())
_SHORTHANDS: Final = {_shorthand(key): key for key in sorted(_KEYS)}
_TEMPLATES: Final = _indexed_templates()


def _template_regex(template: str, separator: str) -> re.Pattern[str]:
    body = template.removeprefix(_PREFIX)
    parts = [re.escape(part.replace(".", separator)) for part in body.split("{}")]
    return re.compile(r"(\d+)".join(parts))


_SHORTHAND_TEMPLATES: Final = [(_template_regex(t, "_"), t) for t in _TEMPLATES]
_PATH_TEMPLATES: Final = [(_template_regex(t, "."), t) for t in _TEMPLATES]


def shorthands() -> dict[str, str]:
    """Every keyword shorthand and the contract key it stands for (indexed keys not listed)."""
    return dict(_SHORTHANDS)


def _from_templates(text: str, templates: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in templates:
        match = pattern.fullmatch(text)
        if match:
            return template.format(int(match.group(1)))
    return None


def key_for_shorthand(word: str) -> str | None:
    """``input_shape`` → ``yolospan.input.shape``; None when the word names no contract key."""
    return _SHORTHANDS.get(word) or _from_templates(word, _SHORTHAND_TEMPLATES)


def key_for_path(path: str) -> str | None:
    """``input.shape`` or ``yolospan.input.shape`` → ``yolospan.input.shape``; None when unknown."""
    key = path if path.startswith(_PREFIX) else _PREFIX + path
    if key in _KEYS:
        return key
    return _from_templates(key.removeprefix(_PREFIX), _PATH_TEMPLATES)


def suggestions(word: str, *, paths: bool) -> list[str]:
    """Close contract names for an unknown one, written the way the caller writes keys."""
    known = [key.removeprefix(_PREFIX) for key in _KEYS] if paths else list(_SHORTHANDS)
    return difflib.get_close_matches(word.removeprefix(_PREFIX), known, n=3, cutoff=0.6)


def display_key(key: str) -> str:
    """How reports and the expectation grammar write a key: contract keys without the prefix."""
    if key.startswith(_PREFIX) and key_for_path(key) == key:
        return key.removeprefix(_PREFIX)
    return _quote(key)


# --- values -----------------------------------------------------------------------------------

_BARE: Final = re.compile(r"[A-Za-z_][\w.:/-]*")  # the grammar's bare words, less numbers


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def format_value(value: Any) -> str:
    """A value as the expectation grammar writes it: shapes as ``1x3x640x480``, words bare."""
    if value is MISSING:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = _BARE.fullmatch(value) and value not in ("true", "false")
        return value if plain else _quote(value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            return "x".join(str(v) for v in value)
        return "[" + ", ".join(_format_element(v) for v in value) + "]"
    if callable(value):
        return f"<{getattr(value, '__name__', type(value).__name__)}>"
    return repr(value)


def _format_element(value: Any) -> str:
    if value in ("*", "..."):
        return str(value)
    return format_value(value)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    try:
        return bool(actual == expected)
    except Exception:
        return False


# --- matchers ---------------------------------------------------------------------------------


class Matcher(Protocol):
    def matches(self, actual: Any) -> bool: ...

    def describe(self, key: str) -> str: ...


@dataclass(frozen=True)
class Equals:
    value: Any

    def matches(self, actual: Any) -> bool:
        return actual is not MISSING and _same(actual, self.value)

    def describe(self, key: str) -> str:
        return f"{key}={format_value(self.value)}"


@dataclass(frozen=True)
class Absent:
    def matches(self, actual: Any) -> bool:
        return actual is MISSING

    def describe(self, key: str) -> str:
        return f"!{key}"


@dataclass(frozen=True)
class Present:
    def matches(self, actual: Any) -> bool:
        return actual is not MISSING

    def describe(self, key: str) -> str:
        return key


@dataclass(frozen=True)
class Predicate:
    function: Callable[[Any], object]

    def matches(self, actual: Any) -> bool:
        return actual is not MISSING and bool(self.function(actual))

    def describe(self, key: str) -> str:
        return f"{key}={format_value(self.function)}"


@dataclass(frozen=True)
class Regex:
    pattern: re.Pattern[str]

    def matches(self, actual: Any) -> bool:
        return isinstance(actual, str) and self.pattern.fullmatch(actual) is not None

    def describe(self, key: str) -> str:
        return f"{key}~{_quote(self.pattern.pattern)}"


@dataclass(frozen=True)
class ShapePattern:
    """Dims matched left to right; ``"..."`` may absorb any run, including an empty one."""

    pattern: tuple[Any, ...]

    def matches(self, actual: Any) -> bool:
        return isinstance(actual, list) and _match_dims(actual, 0, self.pattern, 0)

    def describe(self, key: str) -> str:
        return f"{key}={format_value(list(self.pattern))}"


def _match_dims(actual: list[Any], i: int, pattern: tuple[Any, ...], j: int) -> bool:
    if j == len(pattern):
        return i == len(actual)
    element = pattern[j]
    if isinstance(element, str) and element == "...":
        return any(_match_dims(actual, k, pattern, j + 1) for k in range(i, len(actual) + 1))
    if i == len(actual):
        return False
    if isinstance(element, str) and element == "*":
        ok = True
    elif callable(element):
        ok = bool(element(actual[i]))
    else:
        ok = _same(actual[i], element)
    return ok and _match_dims(actual, i + 1, pattern, j + 1)


_COMPARISONS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Compare:
    """A numeric bound such as ``flops>0``; a non-numeric or absent value never satisfies it."""

    op: str
    bound: int | float

    def matches(self, actual: Any) -> bool:
        numeric = isinstance(actual, (int, float)) and not isinstance(actual, bool)
        return numeric and _COMPARISONS[self.op](actual, self.bound)

    def describe(self, key: str) -> str:
        return f"{key}{self.op}{format_value(self.bound)}"


@dataclass(frozen=True)
class Not:
    """``key!=value``: an absent attribute differs from every value, so it matches."""

    value: Any

    def matches(self, actual: Any) -> bool:
        return not matcher_for(self.value).matches(actual)

    def describe(self, key: str) -> str:
        return f"{key}!={format_value(self.value)}"


def matcher_for(expected: Any) -> Matcher:
    """The matcher a plain Python value stands for (see the module docstring)."""
    if expected is None:
        return Absent()
    if isinstance(expected, re.Pattern):
        return Regex(expected)
    if isinstance(expected, (list, tuple)):
        return ShapePattern(tuple(expected))
    if callable(expected):
        return Predicate(expected)
    return Equals(expected)


# --- selectors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    key: str
    matcher: Matcher

    def value_of(self, attributes: Mapping[str, Any]) -> Any:
        return attributes.get(self.key, MISSING)

    def holds(self, attributes: Mapping[str, Any]) -> bool:
        return self.matcher.matches(self.value_of(attributes))

    def describe(self) -> str:
        return self.matcher.describe(display_key(self.key))


def condition_for(key: str, expected: Any) -> Condition:
    return Condition(key, matcher_for(expected))


@dataclass(frozen=True)
class Difference:
    """Why a near miss is not a match: what was asked for and what the span has."""

    what: str
    expected: str
    actual: str

    def __str__(self) -> str:
        if self.actual == "missing":
            return f"{self.what} missing (want {self.expected})"
        return f"{self.what}={self.actual} (want {self.expected})"


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Selector:
    """A span name (or any name) and conditions that must all hold."""

    name: Matcher | None = None
    conditions: tuple[Condition, ...] = ()

    def matches(self, span: _Named) -> bool:
        if self.name is not None and not self.name.matches(span.name):
            return False
        return all(c.holds(span.attributes) for c in self.conditions)

    def differences(self, span: _Named) -> list[Difference]:
        found = []
        if self.name is not None and not self.name.matches(span.name):
            found.append(Difference("name", self._describe_name(), format_value(span.name)))
        for condition in self.conditions:
            actual = condition.value_of(span.attributes)
            if not condition.matcher.matches(actual):
                found.append(
                    Difference(display_key(condition.key), condition.describe(), format_value(actual))
                )
        return found

    def _describe_name(self) -> str:
        if self.name is None:
            return "*"
        described = self.name.describe("")
        return described.removeprefix("=")

    def describe(self) -> str:
        """The selector in the expectation grammar, e.g. ``forward[phase=stride_probe]``."""
        text = self._describe_name()
        if self.conditions:
            text += "[" + ", ".join(c.describe() for c in self.conditions) + "]"
        return text


def build_selector(
    name: str | re.Pattern[str] | Callable[[str], object] | None,
    attrs: Mapping[str, Any] | None,
    shorthand_values: Mapping[str, Any],
) -> Selector:
    """The selector of ``find(name, attrs={...}, **shorthands)``; unknown shorthands raise TypeError."""
    conditions = [condition_for(key, value) for key, value in (attrs or {}).items()]
    for word, value in shorthand_values.items():
        key = key_for_shorthand(word)
        if key is None:
            close = suggestions(word, paths=False)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TypeError(
                f"unknown span attribute shorthand {word!r}{hint} "
                f"(other keys go in full through attrs={{'key': value}})"
            )
        conditions.append(condition_for(key, value))
    return Selector(None if name is None else matcher_for(name), tuple(conditions))


def nearest(
    selector: Selector, spans: Iterable[Any], *, limit: int = 3
) -> list[tuple[Any, list[Difference]]]:
    """Non-matching spans closest to the selector: fewest differences, in order of occurrence.

    Spans of the wanted name crowd out those of other names; a span that shares nothing with
    the selector (other name and every condition failing) is no candidate at all.
    """
    total = len(selector.conditions) + (selector.name is not None)
    ranked = []
    for position, span in enumerate(spans):
        differences = selector.differences(span)
        if not differences or len(differences) >= total:
            continue
        name_differs = any(d.what == "name" for d in differences)
        ranked.append(((name_differs, len(differences), position), span, differences))
    if any(not name_differs for (name_differs, _, _), _, _ in ranked):
        ranked = [item for item in ranked if not item[0][0]]
    ranked.sort(key=lambda item: item[0])
    return [(span, differences) for _, span, differences in ranked[:limit]]
