"""Every shipped config against upstream YOLOv5's own numbers.

``upstream_numbers.json`` holds, per config, what upstream v7's ``Model`` reported when built from
the same YAML file; each row says how it was obtained (package versions and the command of
``measure_upstream.py``). These tests need no upstream package: they build yolospan's model and
compare the printed summary (layers, parameters, GFLOPs), strides, anchors after the stride probe,
the stride probe's output shapes, the state dict's keys and shapes, and the outputs in eval and
training mode with the same synthetic weights (summarised by digests). ``test_upstream_direct.py``
compares with the upstream package itself where it is installed.
"""

from __future__ import annotations

import copy

import pytest
import torch
from opentelemetry.trace import NoOpTracerProvider
from upstream_table import (
    digest,
    digest_mismatch,
    fingerprint,
    load_table,
    probe_images,
    synthetic_state_dict,
)

from yolospan.tracing import use_tracer_provider
from yolospan.yolo import build, info_profile, load_spec, shipped_configs, stride_probe

TABLE = load_table()


def test_the_table_covers_every_shipped_config_and_says_how_each_row_was_measured():
    assert sorted(TABLE) == sorted(shipped_configs())
    for name, row in TABLE.items():
        assert "yolov5==7.0.14" in row["how"], name
        assert f"measure_upstream.py {name}" in row["how"], name


@pytest.fixture(scope="module", params=shipped_configs())
def created(request):
    """yolospan's model for one config, built, stride-probed and profiled untraced; one at a time."""
    name = request.param
    torch.manual_seed(0)
    with use_tracer_provider(NoOpTracerProvider()):
        built = build(load_spec(name))
        probe = stride_probe(built.model)
        profile = info_profile(built.model)
    return name, built, probe, profile


def test_summary_matches_upstream(created):
    name, built, _, profile = created
    row = TABLE[name]
    assert profile.summary == row["summary"]
    assert (profile.modules, profile.params, profile.gradients) == (
        row["layers"],
        row["params"],
        row["gradients"],
    )
    assert round(profile.gflops, 1) == row["gflops"]
    assert built.layers == row["rows"]


def test_strides_anchors_and_probe_shapes_match_upstream(created):
    name, _, probe, _ = created
    row = TABLE[name]
    assert list(probe.strides) == row["strides"]
    assert torch.allclose(torch.tensor(probe.anchors), torch.tensor(row["anchors"]), atol=1e-6)
    assert [list(shape) for shape in probe.output_shapes] == row["stride_probe_shapes"]


def test_state_dict_keys_and_shapes_match_upstream(created):
    name, built, _, _ = created
    state = built.model.state_dict()
    assert (len(state), fingerprint(state)) == (
        TABLE[name]["state_dict"]["tensors"],
        TABLE[name]["state_dict"]["fingerprint"],
    )


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_outputs_match_upstream_with_the_same_weights(created, mode):
    name, built, _, _ = created
    model = copy.deepcopy(built.model)
    model.load_state_dict(synthetic_state_dict(model.state_dict()))
    model.train(mode == "train")
    threads = torch.get_num_threads()
    # One thread, as measured: training-mode BatchNorm over the 2×2 maps of the deepest levels
    # amplifies the rounding of a different reduction order to ~2e-5 (yolov5-p6 with two threads).
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            output = model(probe_images())
    finally:
        torch.set_num_threads(threads)
    # The table was recorded on one CPU; another CPU's kernels round differently, and
    # training-mode BatchNorm over the P6/P7 levels' 2×2 and 1×1 maps turns that into different
    # numbers: on an AMD EPYC with the same torch, yolov5l6's sums moved by 1.9e-5 of their
    # magnitude and a yolov5-p7 level's sum from -4.47 to -0.32, while eval mode and every P5
    # model hold 1e-5. Models with P6/P7 levels are compared by shape here in training mode;
    # tests/yolo/test_upstream_direct.py compares them with upstream's live model on the same
    # CPU, at 1e-5.
    ill_conditioned = mode == "train" and len(TABLE[name]["strides"]) > 3
    rtol = float("inf") if ill_conditioned else 1e-5
    mismatch = digest_mismatch(digest(output), TABLE[name]["outputs"][mode], rtol=rtol)
    assert mismatch is None, f"{name} ({mode}): {mismatch}"
