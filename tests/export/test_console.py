from __future__ import annotations

import io
import logging
import re

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.export.console import (
    ASCII,
    ConsoleTreeProcessor,
    charset_for,
    describe_call,
    describe_result,
    format_duration,
    format_flops,
    format_rate,
    format_shape,
    format_value,
)

# --- pure formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flops", "text"),
    [
        (0, "0 FLOPs"),
        (999, "999 FLOPs"),
        (1_000, "1.0 KFLOPs"),
        (41_563_136, "41.6 MFLOPs"),
        (999_960_000, "1.0 GFLOPs"),  # rounds up into the next unit, never "1000.0 MFLOPs"
        (16_600_000_000, "16.6 GFLOPs"),
        (2_000_000_000_000_000, "2000.0 TFLOPs"),
    ],
)
def test_format_flops(flops, text):
    assert format_flops(flops) == text


def test_format_shape():
    assert format_shape([1, 3, 640, 640]) == "1×3×640×640"
    assert format_shape([1, 3, 640, 640], ASCII) == "1x3x640x640"
    assert format_shape([]) == "scalar"


def test_format_duration():
    assert format_duration(1_234_567) == "1.2 ms"
    assert format_duration(50_000) == "0.05 ms"
    assert format_duration(2_500_000_000) == "2500.0 ms"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7235389, "7,235,389"),
        (True, "true"),
        (0.000123456, "0.0001235"),
        ("yolov5s", "yolov5s"),
        ("fp32 and autocast agree", '"fp32 and autocast agree"'),
        ("", '""'),
        ((8, 16, 32), "[8, 16, 32]"),
        (None, "null"),
        (b"\x01\xff", "0x01ff"),
        ({"a": 1}, "{a=1}"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_describe_call_forward():
    attrs = {
        A.TRAINING: False,
        A.INPUT_COUNT: 1,
        A.INPUT_SHAPE: (1, 3, 32, 32),
        A.INPUT_DTYPE: "float32",
        A.DEVICE: "cpu",
        A.OUTPUT_COUNT: 4,
        A.OUTPUT_DTYPE: "float32",
        A.output_shape_key(0): (1, 63, 85),
        A.output_shape_key(1): (1, 3, 4, 4, 85),
        A.output_shape_key(2): (1, 3, 2, 2, 85),
        A.output_shape_key(3): (1, 3, 1, 1, 85),
        A.FLOPS: 41_563_136,
    }
    assert describe_call(attrs) == (
        "1×3×32×32 → 1×63×85, 1×3×4×4×85, 1×3×2×2×85, 1×3×1×1×85  float32 cpu  41.6 MFLOPs"
    )


def test_describe_call_several_inputs_many_outputs_autocast_training():
    attrs = {
        A.TRAINING: True,
        A.INPUT_COUNT: 2,
        A.INPUT_SHAPE: (1, 8, 4, 4),
        A.input_shape_key(0): (1, 8, 4, 4),
        A.input_shape_key(1): (1, 16, 4, 4),
        A.INPUT_DTYPE: "float32",
        A.DEVICE: "cuda:0",
        A.AUTOCAST: "float16",
        A.OUTPUT_COUNT: 6,
        A.OUTPUT_DTYPE: "float16",
        **{A.output_shape_key(i): (i,) for i in range(6)},
        A.FLOPS: 0,
    }
    assert describe_call(attrs) == (
        "1×8×4×4, 1×16×4×4 → 0, 1, 2, 3 +2  float32→float16 cuda:0 autocast float16 train  0 FLOPs"
    )


def test_describe_call_with_device_time_achieved_rate_and_fraction_of_peak():
    attrs = {
        A.INPUT_COUNT: 1,
        A.INPUT_SHAPE: (1, 3, 64, 64),
        A.INPUT_DTYPE: "float32",
        A.DEVICE: "cuda:0",
        A.FLOPS: 41_563_136,
        A.DEVICE_TIME_MS: 0.25,
        A.ACHIEVED_FLOPS_PER_S: 166_252_544_000.0,
        A.PEAK_FLOPS_PER_S: 494.5e12,
        A.PEAK_FRACTION: 0.000336,
    }
    assert describe_call(attrs, ASCII) == (
        "1x3x64x64 -> -  float32 cuda:0  41.6 MFLOPs at 166.3 GFLOP/s (0.0% of peak)  device 0.25 ms"
    )
    del attrs[A.PEAK_FRACTION], attrs[A.DEVICE_TIME_MS]  # a device without a known peak; the CPU
    assert describe_call(attrs, ASCII).endswith("  41.6 MFLOPs at 166.3 GFLOP/s")


@pytest.mark.parametrize(
    ("rate", "text"),
    [(2.5e12, "2.5 TFLOP/s"), (999.9e9, "999.9 GFLOP/s"), (3.2e6, "3.2 MFLOP/s"), (12.0, "12.0 FLOP/s")],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


def test_describe_call_without_outputs_after_an_error():
    attrs = {A.TRAINING: False, A.INPUT_COUNT: 1, A.INPUT_SHAPE: (2, 3), A.INPUT_DTYPE: "int64"}
    assert describe_call(attrs, ASCII) == "2x3 -> -  int64"


def test_describe_result_drops_namespace_and_phase():
    attrs = {
        A.PHASE: "amp_check",
        A.AMP_RESULT: "skipped",
        A.AMP_REASON: "device is cpu",
        A.MODEL_STRIDE: (8, 16, 32),
        "custom.key": 3,
    }
    assert describe_result(attrs) == (
        'amp.result=skipped amp.reason="device is cpu" model.stride=[8, 16, 32] custom.key=3'
    )


def test_charset_falls_back_to_ascii_when_the_stream_cannot_encode_box_characters():
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert charset_for(ascii_stream) is ASCII
    assert charset_for(io.StringIO()).guide == "│ "


# --- the processor --------------------------------------------------------------------------------


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()


def _run(stream: io.StringIO, *, layers: bool = True, layer_spans: bool = False, **kwargs) -> str:
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream, layers=layers, **kwargs))
    model = _model()
    with yolospan.use_tracer_provider(provider), yolospan.span("model.init", attributes={A.MODEL_NC: 80}):
        with yolospan.phase("stride_probe", module=model, layers=layer_spans):
            model(torch.zeros(1, 3, 8, 8))
        with yolospan.phase("amp_check", attributes={A.AMP_RESULT: "skipped"}):
            pass
    provider.shutdown()
    timed = re.sub(r"\d+\.\d+ ms", "<t>", stream.getvalue())
    return re.sub(r" at \d+\.\d [KMGT]?FLOP/s", " at <r>", timed)  # achieved rates: wall-clock based


CALL = "1×3×8×8 → 1×4×8×8  float32 cpu"


def test_tree_of_phases_and_forwards():
    assert _run(io.StringIO()).splitlines() == [
        "┌ model.init",
        "│ ┌ stride_probe",
        f"│ │ forward       {CALL}  13.8 KFLOPs at <r>  <t>",
        "│ └ stride_probe  <t>",
        "│ amp_check  amp.result=skipped  <t>",
        "└ model.init  model.nc=80  <t>",
    ]


def test_layer_spans_nest_under_their_forward():
    assert _run(io.StringIO(), layer_spans=True).splitlines() == [
        "┌ model.init",
        "│ ┌ stride_probe",
        "│ │ ┌ forward",
        f"│ │ │ Conv2d #0     {CALL}  13.8 KFLOPs at <r>  <t>",
        "│ │ │ ReLU #1       1×4×8×8 → 1×4×8×8  float32 cpu  0 FLOPs at <r>  <t>",
        f"│ │ └ forward  {CALL}  13.8 KFLOPs at <r>  <t>",
        "│ └ stride_probe  <t>",
        "│ amp_check  amp.result=skipped  <t>",
        "└ model.init  model.nc=80  <t>",
    ]


def test_layers_hidden_leave_the_forward_as_one_line():
    lines = _run(io.StringIO(), layers=False, layer_spans=True).splitlines()
    assert f"│ │ forward       {CALL}  13.8 KFLOPs at <r>  <t>" in lines
    assert not any("Conv2d" in line or "ReLU" in line for line in lines)


def test_a_phase_is_printed_when_it_starts_not_when_it_ends():
    stream = io.StringIO()
    seen_during_forward: list[str] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen_during_forward.append(stream.getvalue())
            return x

    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream))
    probe = Probe()
    with yolospan.phase("stride_probe", module=probe, tracer_provider=provider):
        probe(torch.zeros(1))
    assert seen_during_forward == ["┌ stride_probe\n"]


def test_a_failing_forward_and_its_phase_show_the_error():
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("bad input")

    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream))
    boom = Boom().eval()
    with pytest.raises(ValueError), yolospan.phase("fuse", module=boom, tracer_provider=provider):
        boom(torch.zeros(2, 3))
    lines = re.sub(r"\d+\.\d+ ms", "<t>", stream.getvalue()).splitlines()
    assert lines == [
        "┌ fuse",
        "│ forward       2×3 → -  float32 cpu  ERROR ValueError: bad input  <t>",
        "└ fuse  ERROR ValueError: bad input  <t>",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colors_only_on_a_terminal_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[" not in _run(io.StringIO())
    assert "\033[1mstride_probe\033[0m" in _run(_Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in _run(_Terminal())


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("stream closed")


def test_a_broken_stream_never_breaks_the_traced_code(caplog):
    with caplog.at_level(logging.WARNING, logger="yolospan.export.console"):
        _run(_Broken())
    assert len([r for r in caplog.records if "console span tree disabled" in r.message]) == 1


def test_the_run_id_is_printed_once_per_trace_on_its_root():
    import io

    from opentelemetry.sdk.trace import TracerProvider

    from yolospan import attributes as A
    from yolospan.export.console import ConsoleTreeProcessor

    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream))
    tracer = provider.get_tracer("t")
    step = tracer.start_as_current_span("train_step", attributes={A.RUN_ID: "r-1", A.STEP: 0})
    loss = tracer.start_as_current_span("loss", attributes={A.RUN_ID: "r-1", A.LOSS_TOTAL: 1.5})
    with step, loss:
        pass
    text = stream.getvalue()
    assert text.count("run.id=r-1") == 1
    assert "loss.total=1.5" in text


def test_layer_spans_handed_over_finished_are_in_the_tree():
    """With the SDK's provider, layer spans reach processors through on_end only (docs/performance.md)."""
    import io

    import torch
    from opentelemetry.sdk.trace import TracerProvider
    from torch import nn

    import yolospan
    from yolospan.export.console import ConsoleTreeProcessor

    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream, color=False))
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 4, 4))
        model(torch.zeros(1, 3, 4, 4))
    out = stream.getvalue()
    assert out.count("Conv2d") == 2 and out.count("ReLU") == 2, out
