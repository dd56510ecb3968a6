"""Achieved FLOP/s and the fraction of peak from a span's attributes and its time."""

from __future__ import annotations

import pytest
import torch

from yolospan import attributes as A
from yolospan.tracing._throughput import rate_attributes, span_rate_attributes


def test_achieved_rate_and_fraction_of_peak():
    assert rate_attributes(6_000_000, 0.002, 1e10) == {
        A.ACHIEVED_FLOPS_PER_S: 3e9,
        A.PEAK_FLOPS_PER_S: 1e10,
        A.PEAK_FRACTION: 0.3,
    }


def test_unknown_peak_gives_the_rate_alone():
    assert rate_attributes(1000, 0.5, None) == {A.ACHIEVED_FLOPS_PER_S: 2000.0}


def test_a_layer_without_flops_achieves_zero():
    assert rate_attributes(0, 0.001, 1e12) == {
        A.ACHIEVED_FLOPS_PER_S: 0.0,
        A.PEAK_FLOPS_PER_S: 1e12,
        A.PEAK_FRACTION: 0.0,
    }


@pytest.mark.parametrize("seconds", [0.0, -1e-6, float("nan")])
def test_no_elapsed_time_gives_nothing(seconds):
    assert rate_attributes(1000, seconds, 1e12) == {}


def span(**extra):
    return {A.FLOPS: 2_000_000, A.DEVICE: "cuda:0", A.INPUT_DTYPE: "float32", **extra}


def test_the_peak_is_looked_up_for_the_compute_dtype():
    asked = []

    def peak_of(device, dtype):
        asked.append((device, dtype))
        return 4e9

    assert (
        span_rate_attributes(span(), 0.001, peak_of=peak_of, allow_tf32=lambda: True)[A.PEAK_FRACTION] == 0.5
    )
    span_rate_attributes(span(), 0.001, peak_of=peak_of, allow_tf32=lambda: False)
    span_rate_attributes(span(**{A.AUTOCAST: "float16"}), 0.001, peak_of=peak_of, allow_tf32=lambda: True)
    cpu = {**span(), A.DEVICE: "cpu"}
    span_rate_attributes(cpu, 0.001, peak_of=peak_of, allow_tf32=lambda: True)
    assert asked == [("cuda:0", "tf32"), ("cuda:0", "float32"), ("cuda:0", "float16"), ("cpu", "float32")]


def test_on_the_cpu_there_is_no_peak_and_the_rate_is_still_given():
    cpu = {A.FLOPS: 3_000, A.DEVICE: "cpu", A.INPUT_DTYPE: "float32"}
    assert span_rate_attributes(cpu, 0.001) == {A.ACHIEVED_FLOPS_PER_S: 3e6}


def test_float32_on_cuda_follows_cudnn_tf32_setting(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    span_rate_attributes(span(), 0.001, peak_of=lambda d, t: seen.append(t))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    span_rate_attributes(span(), 0.001, peak_of=lambda d, t: seen.append(t))
    assert seen == ["float32", "tf32"]


@pytest.mark.parametrize("flops", [None, True, "12"])
def test_a_span_without_integer_flops_gets_nothing(flops):
    attrs = span()
    if flops is None:
        del attrs[A.FLOPS]
    else:
        attrs[A.FLOPS] = flops
    assert span_rate_attributes(attrs, 0.001, peak_of=lambda d, t: 1e12) == {}
