from __future__ import annotations

import logging
import threading

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.testing import SpanRecorder
from yolospan.tracing import Layer, _attrs, instrumentation_of


def tiny() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.SiLU(),
        nn.Sequential(nn.Conv2d(8, 4, 1), nn.Upsample(scale_factor=2)),
    )


class TwoHeads(nn.Module):
    """Returns a nested output like YOLO's Detect: (tensor, [tensor, tensor])."""

    def forward(self, x):
        return x * 2, [x[:, :1], x.sum(dim=1, keepdim=True)]


class Labelled(nn.Module):
    """A model that names its own layers, as the YOLO model does."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.ReLU()

    def forward(self, x):
        return self.b(self.a(x))

    def traced_layers(self):
        return [Layer(0, self.a, "Stem", (-1,)), Layer(1, self.b, "Act", (0,))]


def hook_count(module: nn.Module) -> int:
    """Hooks plus modules whose call slot yolospan took (``_compiled_call_impl``)."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + ("_compiled_call_impl" in m.__dict__)
        for m in module.modules()
    )


def test_every_forward_is_a_span_with_the_call_described(spans):
    model = tiny().eval()
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(2, 3, 8, 8))
        model(torch.zeros(1, 3, 16, 16))
    first, second = spans.find("forward")
    assert first.attributes[A.INPUT_SHAPE] == [2, 3, 8, 8]
    assert first.attributes[A.INPUT_DTYPE] == "float32"
    assert first.attributes[A.DEVICE] == "cpu"
    assert first.attributes[A.TRAINING] is False
    assert first.attributes[A.OUTPUT_COUNT] == 1
    assert first.attributes[A.output_shape_key(0)] == [2, 4, 16, 16]
    assert second.attributes[A.INPUT_SHAPE] == [1, 3, 16, 16]
    assert A.PHASE not in first.attributes
    assert first.parent is None


def test_nested_outputs_are_flattened_depth_first(spans):
    with yolospan.instrument(TwoHeads(), tracer_provider=spans.provider) as handle:
        handle.module(torch.ones(1, 3, 4, 4))
    (span,) = spans.find("forward")
    assert span.attributes[A.OUTPUT_COUNT] == 3
    assert span.attributes[A.output_shape_key(0)] == [1, 3, 4, 4]
    assert span.attributes[A.output_shape_key(1)] == [1, 1, 4, 4]
    assert span.attributes[A.output_shape_key(2)] == [1, 1, 4, 4]


def test_indexed_outputs_are_capped_below_the_attribute_limit(spans):
    class Many(nn.Module):
        def forward(self, x):
            return [x] * (A.MAX_INDEXED + 10)

    with yolospan.instrument(Many(), tracer_provider=spans.provider) as handle:
        handle.module(torch.ones(1))
    (span,) = spans.find("forward")
    assert span.attributes[A.OUTPUT_COUNT] == A.MAX_INDEXED + 10
    assert A.output_shape_key(A.MAX_INDEXED - 1) in span.attributes
    assert A.output_shape_key(A.MAX_INDEXED) not in span.attributes
    assert len(span.attributes) < 128


def test_several_tensor_inputs_are_counted_and_indexed(spans):
    class Cat(nn.Module):
        def forward(self, xs):
            return torch.cat(xs, 1)

    with yolospan.instrument(Cat(), tracer_provider=spans.provider) as handle:
        handle.module([torch.ones(1, 2, 4, 4), torch.ones(1, 3, 4, 4)])
    (span,) = spans.find("forward")
    assert span.attributes[A.INPUT_COUNT] == 2
    assert span.attributes[A.INPUT_SHAPE] == [1, 2, 4, 4]
    assert span.attributes[A.input_shape_key(1)] == [1, 3, 4, 4]


def test_layers_are_children_of_the_forward_span(spans):
    model = tiny()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 8, 8))
    (forward,) = spans.find("forward")
    layers = [s for s in spans if s.name != "forward"]
    assert [s.name for s in layers] == ["Conv2d", "BatchNorm2d", "SiLU", "Sequential"]
    assert all(s.parent.span_id == forward.span_id for s in layers)
    assert [s.attributes[A.LAYER_INDEX] for s in layers] == [0, 1, 2, 3]
    assert layers[0].attributes[A.LAYER_PARAMS] == 3 * 8 * 9
    assert A.LAYER_FROM not in layers[0].attributes  # a generic child reads nothing we can name


def test_a_model_can_name_its_own_layers(spans):
    model = Labelled()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 2, 2))
    stem, act = (s for s in list(spans) if s.name != "forward")
    assert (stem.name, stem.attributes[A.LAYER_TYPE], stem.attributes[A.LAYER_FROM]) == ("Stem", "Stem", [-1])
    assert (act.name, act.attributes[A.LAYER_FROM]) == ("Act", [0])


def test_remove_takes_every_hook_off_and_instrument_works_again(spans):
    model = tiny()
    before = hook_count(model)
    handle = yolospan.instrument(model, layers=True, tracer_provider=spans.provider)
    assert hook_count(model) > before
    handle.remove()
    assert hook_count(model) == before
    assert instrumentation_of(model) is None
    model(torch.zeros(1, 3, 8, 8))
    assert list(spans) == []
    with yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 8, 8))
    assert len(spans.find("forward")) == 1
    assert hook_count(model) == before


def test_instrumenting_twice_is_refused_until_removed(spans):
    model = tiny()
    handle = yolospan.instrument(model, tracer_provider=spans.provider)
    with pytest.raises(RuntimeError, match="already instrumented"):
        yolospan.instrument(model, tracer_provider=spans.provider)
    handle.remove()
    yolospan.instrument(model, tracer_provider=spans.provider).remove()


def test_a_failing_forward_ends_its_span_with_error_and_the_exception(spans):
    model = tiny()
    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 2, 8, 8))  # wrong channel count
        model(torch.zeros(1, 3, 8, 8))  # the hooks stay balanced afterwards
    failed = [s for s in list(spans) if s.status == "ERROR"]
    assert {s.name for s in failed} == {"forward", "Conv2d"}
    (forward_failed,) = [s for s in failed if s.name == "forward"]
    assert forward_failed.events[0]["name"] == "exception"
    assert forward_failed.events[0]["attributes"]["exception.type"] == "RuntimeError"
    ok = [s for s in spans.find("forward") if s.status != "ERROR"]
    assert len(ok) == 1 and ok[0].parent is None


def test_tracer_failures_are_logged_never_raised(caplog):
    class Broken(TracerProvider):
        def get_tracer(self, *args, **kwargs):
            raise ValueError("boom")

    model = tiny()
    with caplog.at_level(logging.WARNING), yolospan.instrument(model, tracer_provider=Broken()):
        out = model(torch.zeros(1, 3, 8, 8))
    assert out.shape == (1, 4, 16, 16)
    assert "could not start a span" in caplog.text


def test_attributes_are_computed_only_for_recording_spans(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("attributes computed for a non-recording span")

    monkeypatch.setattr(_attrs, "input_attributes", forbidden)
    monkeypatch.setattr(_attrs, "add_output_attributes", forbidden)
    model = tiny()
    with yolospan.instrument(model, layers=True, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)):
        model(torch.zeros(1, 3, 8, 8))
    with yolospan.instrument(model, layers=True):  # no provider configured at all: the API's no-op
        model(torch.zeros(1, 3, 8, 8))


def test_explicit_provider_wins_over_the_contextual_one(spans):
    other = TracerProvider()
    model = tiny()
    with yolospan.use_tracer_provider(other), yolospan.instrument(model, tracer_provider=spans.provider):
        model(torch.zeros(1, 3, 8, 8))
    assert len(spans.find("forward")) == 1


def test_contextual_provider_is_used_without_touching_the_global_one(spans):
    from opentelemetry import trace

    global_before = trace.get_tracer_provider()
    model = tiny()
    with yolospan.instrument(model), SpanRecorder() as inner:
        model(torch.zeros(1, 3, 8, 8))
    with yolospan.instrument(model):  # outside the inner block: back to the fixture's recorder
        model(torch.zeros(1, 3, 8, 8))
    assert len(inner.find("forward")) == 1
    assert len(spans.find("forward")) == 1
    assert trace.get_tracer_provider() is global_before


def test_without_any_provider_nothing_is_recorded_and_nothing_breaks():
    model = tiny()
    with yolospan.instrument(model):
        assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 16, 16)


def test_autocast_dtype_is_recorded(spans):
    model = nn.Linear(4, 4)
    with yolospan.instrument(model, tracer_provider=spans.provider):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.ones(1, 4))
        model(torch.ones(1, 4))
    inside, outside = spans.find("forward")
    assert inside.attributes[A.AUTOCAST] == "bfloat16"
    assert A.AUTOCAST not in outside.attributes


def test_threads_keep_their_own_span_stacks(spans):
    model = tiny().eval()
    errors = []

    def work():
        try:
            for _ in range(5):
                model(torch.zeros(1, 3, 8, 8))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    with yolospan.instrument(model, layers=True, tracer_provider=spans.provider):
        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    forwards = {s.span_id for s in spans.find("forward")}
    layers = [s for s in list(spans) if s.name != "forward"]
    assert len(forwards) == 15 and len(layers) == 60
    assert all(s.parent.span_id in forwards for s in layers)
    for forward in forwards:  # each forward got exactly its own four layers
        assert sum(s.parent.span_id == forward for s in layers) == 4


def test_a_deep_copy_of_an_instrumented_module_is_not_traced(spans):
    import copy

    model = tiny()
    with yolospan.instrument(model, layers=True):
        clone = copy.deepcopy(model)
        clone(torch.zeros(1, 3, 8, 8))
        assert list(spans) == []
        model(torch.zeros(1, 3, 8, 8))
    assert len(spans.find("forward")) == 1
    with yolospan.instrument(clone):  # the copy can be instrumented on its own
        clone(torch.zeros(1, 3, 8, 8))
    assert len(spans.find("forward")) == 2


def test_modules_on_the_meta_device_are_described(spans, caplog):
    model = nn.Linear(4, 2, device="meta")
    with caplog.at_level(logging.WARNING), yolospan.instrument(model):
        model(torch.empty(3, 4, device="meta"))
    (span,) = spans.find("forward")
    assert span.attributes[A.DEVICE] == "meta"
    assert span.attributes[A.output_shape_key(0)] == [3, 2]
    assert "yolospan" not in caplog.text
