"""Nothing yolospan keeps holds a model alive: dropped models are collected, copies stand alone."""

from __future__ import annotations

import copy
import gc
import weakref

import torch
from torch import nn

import yolospan


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)))


def test_an_instrumented_model_never_removed_is_collected_when_dropped(spans):
    model = tiny()
    yolospan.instrument(model, layers=True)  # the handle is dropped at once, the model still traced
    model(torch.zeros(1, 3, 4, 4))
    assert len(spans.find("forward")) == 1
    alive = weakref.ref(model)
    layer = weakref.ref(model[1][1])
    del model
    gc.collect()
    assert alive() is None
    assert layer() is None


def test_a_deep_copy_does_not_keep_the_original_alive(spans):
    model = tiny()
    handle = yolospan.instrument(model, layers=True)
    clone = copy.deepcopy(model)
    handle.remove()
    alive = weakref.ref(model)
    del model, handle
    gc.collect()
    assert alive() is None
    assert clone(torch.zeros(1, 3, 4, 4)).shape == (1, 4, 4, 4)
    assert list(spans) == []


def test_a_deep_copy_of_a_never_removed_model_does_not_keep_it_alive(spans):
    model = tiny()
    yolospan.instrument(model, layers=True)
    clone = copy.deepcopy(model)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None
    clone(torch.zeros(1, 3, 4, 4))
    assert list(spans) == []
