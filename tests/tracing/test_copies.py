"""An instrumented model stays an ordinary object: it pickles, deep-copies and saves with torch.save.

The rule (docs/compat.md): a copy, however made, is not traced. yolospan's hooks turn into inert
no-ops of the standard library in the copy, so a checkpoint saved from a traced model loads
where yolospan is not installed; the copy can be instrumented on its own.
"""

from __future__ import annotations

import copy
import io
import pickle

import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing._hook import INERT


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU(), nn.Conv2d(8, 4, 1))


def test_an_instrumented_module_pickles_and_its_copy_is_not_traced(spans):
    model = tiny().eval()
    x = torch.randn(1, 3, 8, 8)
    with yolospan.instrument(model, layers=True):
        clone = pickle.loads(pickle.dumps(model))
        torch.testing.assert_close(clone(x), model(x))
    assert len(spans.find("forward")) == 1  # the original's forward only
    assert len(spans) == 5


def test_a_pickled_copy_names_nothing_of_yolospan(spans):
    model = tiny()
    with yolospan.instrument(model, layers=True):
        data = pickle.dumps(model)
    assert b"yolospan" not in data  # a checkpoint from a traced run loads without yolospan installed


def test_a_deep_copy_works_is_not_traced_and_the_original_still_is(spans):
    model = tiny().eval()
    x = torch.randn(1, 3, 8, 8)
    with yolospan.instrument(model, layers=True):
        clone = copy.deepcopy(model)
        torch.testing.assert_close(clone(x), model(x))
        assert len(spans.find("forward")) == 1
        model(x)
    assert len(spans.find("forward")) == 2
    with yolospan.instrument(clone, layers=True):  # the copy is traced once instrumented itself
        clone(x)
    assert len(spans.find("forward")) == 3
    assert len(spans) == 3 * 5


def test_torch_save_of_an_instrumented_yolospan_model_round_trips_and_traces(spans):
    model = yolospan.build_model("yolov5n", nc=3).eval()
    x = torch.zeros(1, 3, 64, 64)
    buffer = io.BytesIO()
    with yolospan.instrument(model, layers=True):
        expected = model(x)[0]
        torch.save(model, buffer)
        torch.save(copy.deepcopy(model), io.BytesIO())  # upstream saves EMA copies this way
    spans.clear()
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded(x)[0], expected)
    assert list(spans) == []  # the loaded model is not traced until instrumented
    with yolospan.instrument(loaded, layers=True):
        loaded(x)
    (forward,) = spans.find("forward")
    assert forward.attributes[A.INPUT_SHAPE] == [1, 3, 64, 64]
    assert forward.attributes[A.FLOPS] > 0
    layers = [s for s in spans if s.parent is not None and s.parent.span_id == forward.span_id]
    assert len(layers) == len(model.model)


def test_a_copy_made_during_a_counting_forward_gets_inert_counters(spans):
    copies: list[nn.Module] = []

    class Snapshot(nn.Module):
        def forward(self, x):
            copies.append(copy.deepcopy(model))  # FLOPs counters are attached right now
            return x

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Snapshot(), nn.Conv2d(4, 4, 1))
    x = torch.zeros(1, 3, 4, 4)
    with yolospan.instrument(model, layers=True):
        model(x)
        (clone,) = copies
        copies.clear()
        assert [list(m._forward_hooks.values()) for m in clone if m._forward_hooks] == [[INERT], [INERT]]
        clone(x)
    assert len(spans.find("forward")) == 1  # the clone is not traced
    assert b"yolospan" not in pickle.dumps([m._forward_hooks for m in clone.modules()])
    assert spans.find("forward")[0].attributes[A.FLOPS] == 2 * (3 * 4 + 4 * 4) * 16
