"""Reversible patches on a stand-in module: exact undo, missing targets, upstream's own exceptions."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from yolospan.instrumentation._patch import Patches


class Boom(Exception):
    pass


@pytest.fixture
def fake(monkeypatch):
    module = types.ModuleType("fake_upstream")

    def check(x):
        if x < 0:
            raise Boom(f"negative: {x}")
        return x * 2

    class Model:
        def forward(self, x):
            return x + 1

    module.check = check
    module.Model = Model
    consumer = types.ModuleType("fake_consumer")
    consumer.check = check  # as `from fake_upstream import check` does
    monkeypatch.setitem(sys.modules, "fake_upstream", module)
    monkeypatch.setitem(sys.modules, "fake_consumer", consumer)
    return module, consumer


def calls(log):
    def wrapper(wrapped, instance, args, kwargs):
        log.append((wrapped.__name__, args))
        return wrapped(*args, **kwargs)

    return wrapper


def test_wrap_then_restore_puts_back_the_very_same_objects(fake):
    module, consumer = fake
    check, forward = module.check, module.Model.__dict__["forward"]
    log = []
    patches = Patches()
    assert patches.wrap("fake_upstream", "check", calls(log), imported_by=["fake_consumer"])
    assert patches.wrap("fake_upstream", "Model.forward", calls(log))
    assert module.check(2) == 4 and consumer.check(3) == 6 and module.Model().forward(1) == 2
    assert log == [("check", (2,)), ("check", (3,)), ("forward", (1,))]
    patches.restore()
    assert module.check is check and consumer.check is check
    assert module.Model.__dict__["forward"] is forward
    assert len(patches) == 0


def test_a_module_imported_while_patched_gets_the_original_back(fake, monkeypatch):
    module, _ = fake
    check = module.check
    patches = Patches()
    patches.wrap("fake_upstream", "check", calls([]), imported_by=["late_consumer"])
    late = types.ModuleType("late_consumer")
    late.check = module.check  # imported after instrumenting: it bound the wrapper
    monkeypatch.setitem(sys.modules, "late_consumer", late)
    patches.restore()
    assert late.check is check


def test_an_inherited_method_is_removed_again_not_copied_into_the_subclass(fake):
    module, _ = fake

    class Sub(module.Model):
        pass

    patches = Patches()
    patches.wrap("fake_upstream", "Model.forward", calls([]))
    patches.add(Sub, "traced_layers", lambda self: [])
    assert Sub().traced_layers() == []
    patches.restore()
    assert "traced_layers" not in vars(Sub) and not hasattr(Sub, "traced_layers")


def test_a_missing_target_is_skipped_and_logged_once_at_debug(fake, caplog):
    caplog.set_level(logging.DEBUG, logger="yolospan.instrumentation._patch")
    patches = Patches()
    assert not patches.wrap("fake_upstream", "Model.gone", calls([]))
    assert not patches.wrap("fake_upstream", "Model.gone", calls([]))
    assert not patches.wrap("no_such_upstream_module", "f", calls([]))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Model.gone" in m for m in messages) == 1
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert len(patches) == 0


def test_upstreams_exception_reaches_the_caller_untouched(fake):
    module, _ = fake
    patches = Patches()
    patches.wrap("fake_upstream", "check", calls([]))
    with pytest.raises(Boom) as raised:
        module.check(-1)
    assert str(raised.value) == "negative: -1" and raised.value.__cause__ is None
    patches.restore()


def test_a_patch_replaced_by_someone_else_is_left_to_them(fake):
    module, _ = fake
    patches = Patches()
    patches.wrap("fake_upstream", "check", calls([]))

    def theirs(x):
        return 0

    module.check = theirs
    patches.restore()
    assert module.check is theirs


@pytest.fixture
def late_module(tmp_path, monkeypatch):
    """A module on disk that nobody has imported yet (as yolov5.train is when instrumenting)."""
    (tmp_path / "late_upstream.py").write_text("def run(x):\n    return x * 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "late_upstream", raising=False)
    yield "late_upstream"
    sys.modules.pop("late_upstream", None)


def test_wrap_when_imported_waits_for_the_import_and_never_imports_itself(late_module):
    log = []
    patches = Patches()
    patches.wrap_when_imported(late_module, "run", calls(log))
    assert late_module not in sys.modules
    import late_upstream

    assert late_upstream.run(2) == 6 and log == [("run", (2,))]
    original = late_upstream.run.__wrapped__
    patches.restore()
    assert late_upstream.run is original


def test_wrap_when_imported_after_restore_does_nothing(late_module):
    log = []
    patches = Patches()
    patches.wrap_when_imported(late_module, "run", calls(log))
    patches.restore()
    import late_upstream

    assert late_upstream.run(2) == 6 and log == [] and len(patches) == 0
