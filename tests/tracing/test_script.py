"""The learned hook path: later forwards of a signature follow the layer calls of the first one and
give exactly the spans that describing every layer call gives."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from span_content import content
from yolospan import attributes as A
from yolospan.tracing import _instrument, _script


class Cut(nn.Module):
    """Keeps the first ``keep`` channels: its output's shape is set from outside, not by its input."""

    def __init__(self) -> None:
        super().__init__()
        self.keep = 2

    def forward(self, x):
        return x[:, : self.keep]


class Join(nn.Module):
    """Takes a list and keywords: checked by its whole call signature."""

    def forward(self, parts, *, scale, bias):
        return torch.cat(parts, 1) * scale + bias


class Flaky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def forward(self, x):
        if self.fail:
            raise ValueError("flaky layer")
        return x.relu()


class Steered(nn.Module):
    """A plain module (no layer list of its own) whose forward each test step steers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.SiLU()
        self.c = Cut()
        self.d = Join()
        self.f = Flaky()
        self.e = nn.Conv2d(8, 2, 1)
        self.g = nn.Identity()
        self.where = "cpu"  # the device of g's input
        self.skip_b = False
        self.grow = 0  # > 0: e's input grows by one sample per forward (state, not the input)
        self.fail_e = False
        self.bias = torch.zeros(1)  # d's keyword tensor: its shape is set from outside

    def forward(self, x):
        x = self.a(x)
        if not self.skip_b:
            x = self.b(x)
        y = self.c(x)
        x = self.d([x, x], scale=2.0, bias=self.bias)
        with contextlib.suppress(ValueError):
            x = self.f(x)  # raises when told to: the model carries on
        if self.grow:
            x = torch.cat([x] * self.grow)
            self.grow += 1
        if self.fail_e:
            raise RuntimeError("forward went wrong")
        return self.e(x), self.g(y.to(self.where))


Step = Callable[[Steered], Any]


def _set(**values: Any) -> Step:
    def step(model: Steered) -> None:
        for name, value in values.items():
            target = model
            *path, last = name.split("__")
            for part in path:
                target = getattr(target, part)
            setattr(target, last, value)

    return step


STEPS: list[tuple[str, Step, tuple[int, ...]]] = [
    ("learns", _set(), (1, 3, 8, 8)),
    ("follows", _set(), (1, 3, 8, 8)),
    ("follows again", _set(), (1, 3, 8, 8)),
    ("a new signature learns", _set(), (2, 3, 6, 6)),
    ("and follows", _set(), (2, 3, 6, 6)),
    ("the first signature still follows", _set(), (1, 3, 8, 8)),
    ("a layer skipped", _set(skip_b=True), (1, 3, 8, 8)),
    ("learns again", _set(skip_b=False), (1, 3, 8, 8)),
    ("follows", _set(), (1, 3, 8, 8)),
    ("an output of another shape", _set(c__keep=3), (1, 3, 8, 8)),
    ("and back", _set(c__keep=2), (1, 3, 8, 8)),
    ("a keyword tensor of another shape", _set(bias=torch.zeros(1, 8, 1, 1)), (1, 3, 8, 8)),
    ("and back", _set(bias=torch.zeros(1)), (1, 3, 8, 8)),
    ("a layer's input on another device", _set(where="meta"), (1, 3, 8, 8)),
    ("and back", _set(where="cpu"), (1, 3, 8, 8)),
    ("a layer raises, the model goes on", _set(f__fail=True), (1, 3, 8, 8)),
    ("follows after it", _set(f__fail=False), (1, 3, 8, 8)),
    ("a layer's input grows with state", _set(grow=1), (1, 3, 8, 8)),
    ("still growing", _set(), (1, 3, 8, 8)),
    ("growth stops", _set(grow=0), (1, 3, 8, 8)),
    ("follows", _set(), (1, 3, 8, 8)),
    ("the forward raises", _set(fail_e=True), (1, 3, 8, 8)),
    ("and recovers", _set(fail_e=False), (1, 3, 8, 8)),
    ("train mode", lambda model: model.train(), (1, 3, 8, 8)),
    ("train mode follows", _set(), (1, 3, 8, 8)),
    ("one layer back in eval", lambda model: model.b.eval(), (1, 3, 8, 8)),
]


def _recorder() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _run(steps: list[tuple[str, Step, tuple[int, ...]]], *, scripts: bool, monkeypatch) -> list[Any]:
    """Each step's spans and its count of described layer calls; ``scripts=False`` describes
    every layer call of every forward."""
    torch.manual_seed(0)
    model = Steered().eval()
    provider, exporter = _recorder()
    out = []
    with monkeypatch.context() as patch:
        described = _layer_descriptions(patch)
        patch.setattr(_script, "MAX_MISSES", len(steps))  # every step below follows or learns
        if not scripts:
            patch.setattr(_script, "learn", lambda *args: None)
        with yolospan.instrument(model, layers=True, tracer_provider=provider), torch.no_grad():
            for _name, step, shape in steps:
                step(model)
                exporter.clear()
                before = described[0]
                with contextlib.suppress(RuntimeError):
                    model(torch.ones(shape))
                out.append((exporter.get_finished_spans(), described[0] - before))
    return out


def test_followed_forwards_give_the_spans_that_described_ones_give(monkeypatch):
    followed = _run(STEPS, scripts=True, monkeypatch=monkeypatch)
    described = _run(STEPS, scripts=False, monkeypatch=monkeypatch)
    for (name, _, _), (mine, layers_described), (theirs, _) in zip(STEPS, followed, described, strict=True):
        assert content(mine, by_start=True) == content(theirs, by_start=True), name
        if name.startswith(("follows", "and follows", "the first signature still", "train mode follows")):
            assert layers_described == 0, name
    followed = [spans for spans, _ in followed]
    # The steps reach what they are about:
    by_name = {name: spans for (name, _, _), spans in zip(STEPS, followed, strict=True)}
    flaky = [s for s in by_name["a layer raises, the model goes on"] if s.name == "Flaky"]
    assert flaky[0].status.description == "ValueError: flaky layer"
    cut = [s for s in by_name["an output of another shape"] if s.name == "Cut"]
    assert cut[0].attributes[A.output_shape_key(0)] == (1, 3, 8, 8)
    grown = sorted((s for s in by_name["still growing"] if s.name == "Conv2d"), key=lambda s: s.start_time)
    assert grown[-1].attributes[A.INPUT_SHAPE] == (2, 8, 8, 8)  # e's input: two copies by then
    assert [s.name for s in by_name["the forward raises"] if s.status.description] == ["forward"]


def _layer_descriptions(monkeypatch) -> list[int]:
    """Counts the layer calls described (`Instrumentation._describe` on a layer frame)."""
    counted = [0]
    original = _instrument.Instrumentation._describe

    def counting(self, frame, *args):
        if frame.root is not None:
            counted[0] += 1
        return original(self, frame, *args)

    monkeypatch.setattr(_instrument.Instrumentation, "_describe", counting)
    return counted


def test_a_followed_forward_describes_no_layer_call(monkeypatch):
    described = _layer_descriptions(monkeypatch)
    model = Steered().eval()
    provider, exporter = _recorder()
    with yolospan.instrument(model, layers=True, tracer_provider=provider), torch.no_grad():
        model(torch.ones(1, 3, 8, 8))
        assert described[0] == 7
        for _ in range(3):
            model(torch.ones(1, 3, 8, 8))
        assert described[0] == 7
        assert len(exporter.get_finished_spans()) == 4 * 8


def _calls(handle: yolospan.Instrumentation) -> list[Any]:
    return list(handle._targets[0].calls.values())


def test_a_signature_whose_layer_calls_keep_changing_is_described_for_good(monkeypatch):
    described = _layer_descriptions(monkeypatch)
    model = Steered().eval()
    model.grow = 1
    provider, _ = _recorder()
    with yolospan.instrument(model, layers=True, tracer_provider=provider) as handle, torch.no_grad():
        for _ in range(2 * _script.MAX_MISSES + 2):
            model(torch.ones(1, 3, 8, 8))
        (call,) = _calls(handle)
        assert call.misses == _script.MAX_MISSES and call.script is None
        before = described[0]
        model(torch.ones(1, 3, 8, 8))
        assert described[0] == before + 7  # every layer call described, no attempt to follow


class Outer(nn.Module):
    """Calls ``inner`` (another traced layer) inside its own forward when told to."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner_ref = [inner]  # not a child: both are layers of the model
        self.nest = False

    def forward(self, x):
        return self.inner_ref[0](x) if self.nest else x + 1


class Nesting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.ReLU()
        self.outer = Outer(self.inner)
        self.last = nn.Identity()

    def forward(self, x):
        return self.last(self.outer(x))


def test_a_layer_called_inside_a_followed_one_ends_the_following(monkeypatch):
    """The documented give-up: its span is the forward's child, not the outer layer's."""
    model = Nesting().eval()
    provider, exporter = _recorder()
    with yolospan.instrument(model, layers=True, tracer_provider=provider) as handle:
        model(torch.ones(2))
        model(torch.ones(2))
        assert _calls(handle)[0].script is not None
        exporter.clear()
        model.outer.nest = True
        model(torch.ones(2))
        spans = content(exporter.get_finished_spans(), by_start=True)
        assert [(name, parent) for name, parent, *_ in spans] == [
            ("forward", None),
            ("Outer", "forward"),
            ("ReLU", "forward"),
            ("Identity", "forward"),
        ]
        assert _calls(handle)[0].script is None  # dropped: the next forward describes
        exporter.clear()
        model(torch.ones(2))  # described, so the nesting is seen as it is
        parents = {name: parent for name, parent, *_ in content(exporter.get_finished_spans())}
        assert parents["ReLU"] == "Outer"


def test_threads_follow_their_own_forwards():
    model = Steered().eval()
    provider, exporter = _recorder()
    errors: list[BaseException] = []

    def run(shape: tuple[int, ...]) -> None:
        try:
            for _ in range(10):
                model(torch.ones(shape))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    shapes = [(1, 3, 8, 8), (2, 3, 6, 6), (1, 3, 10, 4), (3, 3, 4, 4)]
    with yolospan.instrument(model, layers=True, tracer_provider=provider), torch.no_grad():
        threads = [threading.Thread(target=run, args=(shape,)) for shape in shapes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    spans = exporter.get_finished_spans()
    forwards = {s.context.span_id: s for s in spans if s.name == "forward"}
    assert len(forwards) == 40
    children: dict[int, list[Any]] = {}
    for s in spans:
        if s.name != "forward":
            children.setdefault(s.parent.span_id, []).append(s)
    for span_id, forward in forwards.items():
        layers = sorted(children[span_id], key=lambda s: s.start_time)
        types = [s.attributes[A.LAYER_TYPE] for s in layers]
        assert types == ["Conv2d", "SiLU", "Cut", "Join", "Flaky", "Conv2d", "Identity"]
        assert layers[0].attributes[A.INPUT_SHAPE] == forward.attributes[A.INPUT_SHAPE]
        assert all(forward.start_time <= s.start_time <= s.end_time <= forward.end_time for s in layers)


@pytest.mark.parametrize("sampled", [True, False])
def test_an_unsampled_forward_follows_nothing(sampled):
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = Steered().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider) as handle, torch.no_grad():
        for _ in range(3):
            model(torch.ones(1, 3, 8, 8))
        assert handle._local.follower is None
    assert len(exporter.get_finished_spans()) == (24 if sampled else 0)
