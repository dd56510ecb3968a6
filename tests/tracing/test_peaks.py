"""The peak FLOP/s table: device names as torch reports them, the override, the compute dtype."""

from __future__ import annotations

import logging

import pytest
import torch

from yolospan.tracing import _peaks
from yolospan.tracing._peaks import PeakOverrideError, compute_dtype, lookup, parse_override, peak_flops

T = 1e12


@pytest.mark.parametrize(
    ("device_name", "row"),
    [
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 SXM5 80GB", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-PCIE-40GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "V100 PCIe"),
        ("Tesla V100S-PCIE-32GB", "V100S PCIe"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"),
        ("NVIDIA RTX A6000", "RTX A6000"),
    ],
)
def test_device_names_as_torch_reports_them_find_their_row(device_name, row):
    found = lookup(device_name)
    assert found is not None and found.name == row


@pytest.mark.parametrize(
    "device_name",
    [
        "NVIDIA A10G",  # not A10: a different board, not in NVIDIA's A10 datasheet
        "NVIDIA A100X",
        "NVIDIA L40",  # not L4, not L40S
        "NVIDIA GH200 480GB",  # not H200
        "NVIDIA H200 NVL",
        "NVIDIA H100 NVL",
        "NVIDIA H100",  # form factor unknown: SXM and PCIe peaks differ
        "Tesla V100-SXM3-32GB",
        "Quadro RTX 6000",  # Turing, not the Ada RTX 6000
        "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
        "NVIDIA GeForce RTX 4090",
        "",
    ],
)
def test_unknown_or_ambiguous_devices_have_no_row(device_name):
    assert lookup(device_name) is None


def test_h100_pcie_and_sxm_have_their_own_peaks():
    sxm, pcie = lookup("NVIDIA H100 80GB HBM3"), lookup("NVIDIA H100 PCIe")
    assert sxm is not None and pcie is not None
    assert (sxm.bfloat16, sxm.float32) == (989.5 * T, 67 * T)
    assert (pcie.bfloat16, pcie.float32) == (756.5 * T, 51 * T)


def test_a10_and_a100_have_their_own_peaks():
    assert peak_flops("NVIDIA A10", "float16") == 125 * T
    assert peak_flops("NVIDIA A100-SXM4-80GB", "float16") == 312 * T


def test_a_different_multiprocessor_count_than_the_datasheet_part_is_unknown():
    assert lookup("NVIDIA A100-SXM4-40GB", sms=108) is not None
    assert lookup("NVIDIA A100-SXM4-40GB", sms=14) is None  # a MIG slice that does not say so
    assert peak_flops("NVIDIA H200", "bfloat16", sms=132) == 989.5 * T
    assert peak_flops("NVIDIA H200", "bfloat16", sms=66) is None


def test_dtypes_without_a_datasheet_figure_are_absent():
    assert peak_flops("Tesla T4", "bfloat16") is None
    assert peak_flops("NVIDIA RTX A6000", "float16") is None
    assert peak_flops("NVIDIA RTX A6000", "float32") == 38.7 * T
    assert peak_flops("NVIDIA H200", "int8") is None


def test_gpus_without_tf32_units_use_their_float32_peak_for_tf32():
    assert peak_flops("Tesla T4", "tf32") == peak_flops("Tesla T4", "float32") == 8.1 * T
    assert peak_flops("NVIDIA A100-PCIE-40GB", "tf32") == 156 * T


def test_no_device_name_means_no_peak_even_with_an_override():
    assert peak_flops(None, "float32", env="1e12") is None


def test_one_number_overrides_every_dtype():
    assert parse_override(" 5e12 ") == dict.fromkeys(("float32", "tf32", "float16", "bfloat16"), 5e12)
    assert peak_flops("NVIDIA GeForce RTX 4090", "float16", env="5e12") == 5e12
    assert peak_flops("NVIDIA H200", "bfloat16", env="5e12") == 5e12


def test_named_dtypes_override_those_and_the_table_keeps_the_others():
    env = "bfloat16=900e12, float32=60e12"
    assert parse_override(env) == {"bfloat16": 900e12, "float32": 60e12}
    assert peak_flops("NVIDIA H200", "bfloat16", env=env) == 900e12
    assert peak_flops("NVIDIA H200", "float16", env=env) == 989.5 * T
    assert peak_flops("NVIDIA GeForce RTX 4090", "float16", env=env) is None
    assert peak_flops("NVIDIA H200", "float16", env="  ") == 989.5 * T  # blank: not set


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("fast", "YOLOSPAN_PEAK_FLOPS: 'fast' is not a number of FLOP/s"),
        ("-1", "YOLOSPAN_PEAK_FLOPS: '-1' is not a positive, finite number of FLOP/s"),
        ("nan", "YOLOSPAN_PEAK_FLOPS: 'nan' is not a positive, finite number of FLOP/s"),
        ("inf", "YOLOSPAN_PEAK_FLOPS: 'inf' is not a positive, finite number of FLOP/s"),
        ("fp16=1e12", "YOLOSPAN_PEAK_FLOPS: 'fp16=1e12' is not dtype=FLOP/s with dtype one of float32, tf32"),
        ("float16=1e12,", "YOLOSPAN_PEAK_FLOPS: '' is not dtype=FLOP/s"),
        ("float16=x", "YOLOSPAN_PEAK_FLOPS float16: 'x' is not a number of FLOP/s"),
    ],
)
def test_a_malformed_override_names_the_variable_and_the_problem(text, problem):
    with pytest.raises(PeakOverrideError) as caught:
        parse_override(text)
    assert str(caught.value).startswith(problem)


def test_a_malformed_override_gives_no_peak_and_one_warning(caplog):
    _peaks._override.cache_clear()
    with caplog.at_level(logging.WARNING, logger="yolospan.tracing._peaks"):
        assert peak_flops("NVIDIA H200", "bfloat16", env="lots") is None
        assert peak_flops("NVIDIA H200", "float16", env="lots") is None
    assert [r.getMessage() for r in caplog.records] == [
        "yolospan: YOLOSPAN_PEAK_FLOPS: 'lots' is not a number of FLOP/s; no peak FLOP/s is used"
    ]


@pytest.mark.parametrize(
    ("dtype", "autocast", "device_type", "allow_tf32", "expected"),
    [
        ("float32", None, "cuda", True, "tf32"),
        ("float32", None, "cuda", False, "float32"),
        ("float32", None, "cpu", True, "float32"),
        ("float32", "float16", "cuda", True, "float16"),
        ("float32", "bfloat16", "cpu", False, "bfloat16"),
        ("float16", None, "cuda", True, "float16"),
    ],
)
def test_the_compute_dtype(dtype, autocast, device_type, allow_tf32, expected):
    assert compute_dtype(dtype, autocast, device_type=device_type, allow_tf32=allow_tf32) == expected


def test_devices_other_than_cuda_have_no_peak(monkeypatch):
    monkeypatch.setenv(_peaks.ENV_PEAK_FLOPS, "1e12")  # the override is for CUDA devices only
    assert _peaks.device_peak_flops("cpu", "float32") is None
    assert _peaks.device_peak_flops("mps:0", "float32") is None


def test_a_cuda_device_is_identified_by_its_name_and_multiprocessors(monkeypatch):
    _peaks._cuda_identity.cache_clear()
    monkeypatch.delenv(_peaks.ENV_PEAK_FLOPS, raising=False)

    class Props:
        name = "NVIDIA L4"
        multi_processor_count = 58

    asked = []

    def properties(index):
        asked.append(index)
        return Props()

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    try:
        assert _peaks.device_peak_flops("cuda:1", "float16") == 121 * T
        assert _peaks.device_peak_flops("cuda:1", "tf32") == 60 * T
        assert asked == [1]  # looked up once per device
        monkeypatch.setenv(_peaks.ENV_PEAK_FLOPS, "float16=7e12")
        assert _peaks.device_peak_flops("cuda:1", "float16") == 7e12
    finally:
        _peaks._cuda_identity.cache_clear()


def test_a_device_whose_properties_cannot_be_read_has_no_peak(monkeypatch):
    _peaks._cuda_identity.cache_clear()

    def broken(index):
        raise RuntimeError("no driver")

    monkeypatch.setattr(torch.cuda, "get_device_properties", broken)
    try:
        assert _peaks.device_peak_flops("cuda:0", "float16") is None
    finally:
        _peaks._cuda_identity.cache_clear()
