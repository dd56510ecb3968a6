"""Reversible patches of upstream functions and methods, with ``wrapt`` as contrib's instrumentors do.

`Patches.wrap` replaces one attribute with a ``wrapt.FunctionWrapper`` and remembers exactly what
was there (or that nothing was, in the owner's own ``__dict__``); `Patches.restore` puts it back.
A target that the installed version lacks is logged once at debug level and skipped. A function
that other modules imported by name (``from pkg.checks import check_amp``) is also replaced in
those modules when they are already loaded, and restored there too. `Patches.wrap_when_imported`
waits for its module to be imported (wrapt's post-import hook), so instrumenting never imports an
upstream script itself: ``python -m yolov5.train`` must stay the only copy of ``train.py``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

_log = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
"""``wrapper(wrapped, instance, args, kwargs)``, wrapt's calling convention."""

_ABSENT = object()
_reported: set[str] = set()


def _debug_once(message: str) -> None:
    if message not in _reported:
        _reported.add(message)
        _log.debug("yolospan: %s", message)


@dataclass
class _Applied:
    owner: Any
    name: str
    before: Any  # the owner's own __dict__ entry, or _ABSENT
    installed: Any
    imported_by: tuple[str, ...] = ()  # modules that may have bound ``installed`` by name since


class Patches:
    """The patches one instrumentor applied; `restore` undoes them all, newest first."""

    def __init__(self) -> None:
        self._applied: list[_Applied] = []
        self._waiting: dict[object, tuple[str, str, Wrapper]] = {}

    def __len__(self) -> int:
        return len(self._applied)

    def wrap(self, module: str, path: str, wrapper: Wrapper, *, imported_by: Iterable[str] = ()) -> bool:
        """Wrap ``module``'s ``path`` (``func`` or ``Class.method``); False when the target is missing."""
        owner = _resolve_owner(module, path)
        name = path.rsplit(".", 1)[-1]
        if owner is None or not hasattr(owner, name):
            _debug_once(f"{module}.{path} is not in the installed version; not traced")
            return False
        before = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else _ABSENT
        original = getattr(owner, name) if before is _ABSENT else before
        installed = wrapt.FunctionWrapper(original, wrapper)  # type: ignore[arg-type]
        consumers = tuple(imported_by)
        self._set(owner, name, before, installed, consumers)
        for consumer in consumers:  # a module-level function, already imported by name elsewhere
            loaded = sys.modules.get(consumer)
            if loaded is not None and vars(loaded).get(name) is original:
                self._set(loaded, name, original, installed)
        return True

    def wrap_when_imported(self, module: str, path: str, wrapper: Wrapper) -> None:
        """`wrap` once ``module`` is imported: now if it is, else when it is, unless `restore` ran first.

        wrapt keeps the hook until the module is imported; after `restore` it does nothing and holds
        nothing of this instrumentation (only a weak reference to these patches). wrapt puts its
        finder first on ``sys.meta_path`` once; it acts only on modules that have a hook.
        """
        key = object()
        self._waiting[key] = (module, path, wrapper)
        patches = weakref.ref(self)

        def imported(_: ModuleType) -> None:
            alive = patches()
            target = alive._waiting.pop(key, None) if alive is not None else None
            if alive is None or target is None:
                return
            try:  # this runs inside upstream's import statement: never fail it
                alive.wrap(*target)
            except Exception:
                _log.warning("yolospan: could not wrap %s.%s", module, path, exc_info=True)

        wrapt.register_post_import_hook(imported, module)

    def add(self, owner: type, name: str, value: Any) -> None:
        """Give ``owner`` an attribute it does not have (removed again by `restore`)."""
        before = vars(owner).get(name, _ABSENT)
        self._set(owner, name, before, value)

    def _set(
        self, owner: Any, name: str, before: Any, installed: Any, imported_by: tuple[str, ...] = ()
    ) -> None:
        setattr(owner, name, installed)
        self._applied.append(_Applied(owner, name, before, installed, imported_by))

    def restore(self) -> None:
        """Put back exactly what was there; a patch someone else replaced since is left alone."""
        self._waiting.clear()
        while self._applied:
            patch = self._applied.pop()
            for consumer in patch.imported_by:  # modules imported while the wrapper was in place
                loaded = sys.modules.get(consumer)
                if loaded is not None and vars(loaded).get(patch.name) is patch.installed:
                    setattr(loaded, patch.name, patch.before)
            if vars(patch.owner).get(patch.name, _ABSENT) is not patch.installed:
                _log.debug("yolospan: %s was replaced by someone else; left as it is", patch.name)
                continue
            if patch.before is _ABSENT:
                delattr(patch.owner, patch.name)
            else:
                setattr(patch.owner, patch.name, patch.before)


def _resolve_owner(module: str, path: str) -> Any:
    try:
        owner: Any = importlib.import_module(module)
    except Exception as error:  # an optional part of upstream that fails to import here
        _debug_once(f"{module} could not be imported ({type(error).__name__}: {error}); not traced")
        return None
    for part in path.split(".")[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner
