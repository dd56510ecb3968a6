"""yolospan's torch hooks are objects that a copy of the module does not carry along.

yolospan's calls run through a slot torch leaves out of copies (see `_instrument`); the one hook
it registers is the FLOPs counter of `_flops`, on a module's layers during the first forward of
each input signature. A module pickles, deep-copies and saves with ``torch.save`` together with
the hooks registered on it, so a copy made during such a forward gets `INERT` in the counter's
place: ``().__init__``, a callable of the standard library that accepts any arguments and
returns None (torch reads None from a hook as "change nothing"). The copy is not traced, holds
no reference to the original, and names nothing of yolospan: it loads where yolospan is not
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

INERT: Callable[..., None] = ().__init__  # type: ignore[misc]  # the bound no-op a pickle rebuilds
"""What a yolospan hook becomes in a copy of its module: a no-op of the standard library."""


class CopiedAsInert:
    """Base of yolospan's hook objects: pickled or deep-copied, an instance becomes `INERT`."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (getattr, ((), "__init__"))

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return INERT
