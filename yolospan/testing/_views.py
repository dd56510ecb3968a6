"""What the expectation and report modules need of recorded spans, stated as protocols.

`yolospan.testing._spans` defines the span types and their query API, which raise with the
reports of `_report` and evaluate the expectations of `_expect`. Those two modules see spans only
through these protocols, so every import in the package points one way: the span types above,
the behaviour they call below, and nothing below knows the concrete types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Any, Protocol

__all__ = ["RecordingView", "ScopeView", "SpanView"]


class SpanView(Protocol):
    """One recorded span as a report renders it."""

    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Any]: ...

    @property
    def index(self) -> int: ...

    @property
    def parent(self) -> SpanView | None: ...

    @property
    def children(self) -> Sequence[SpanView]: ...

    @property
    def phase(self) -> str | None: ...

    @property
    def status(self) -> str: ...

    @property
    def status_description(self) -> str | None: ...

    def ancestors(self) -> Sized: ...

    def descendants(self) -> Sequence[SpanView]: ...


class RecordingView(Protocol):
    """Everything one capture recorded, and where it came from."""

    @property
    def spans(self) -> Sequence[SpanView]: ...

    @property
    def source(self) -> str: ...

    @property
    def hint(self) -> str: ...


class ScopeView(Protocol):
    """An ordered selection of spans from one recording, which selectors can narrow."""

    @property
    def recording(self) -> RecordingView: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[SpanView]: ...

    def names(self) -> list[str]: ...

    def select(self, selector: Any) -> ScopeView: ...
