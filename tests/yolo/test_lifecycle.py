"""Every shipped config against upstream's numbers, and each lifecycle step's effects.

Parameter and module counts, GFLOPs, strides, anchors and bias priors are derived from the
architecture (upstream's parse_model rules) and agree with upstream v7.0's printed summaries, e.g.
``YOLOv5s summary: 214 layers, 7235389 parameters, 7235389 gradients, 16.6 GFLOPs`` and, fused,
``157 layers, 7225885 parameters``. README tables quote fused figures (yolov5m 21,172,173).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import thop
import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.yolo import build, fuse, info_profile, load_spec, stride_probe
from yolospan.yolo.blocks import Conv
from yolospan.yolo.heads import Segment


@dataclass(frozen=True)
class Upstream:
    params: int
    modules: int  # upstream v7.0's "layers": every module in the tree
    leaf_modules: int  # master-style count of modules without children
    gflops: str  # at 640, as printed
    conv_bn_flops: int  # 2 x thop MACs of the 32x32 probe from convs and BatchNorms
    upsample_elements: int  # nearest-upsample outputs of the 32x32 probe (thop's rule decides their cost)
    fused_params: int
    fused_modules: int
    fused_conv_flops: int  # conv_bn_flops once the BatchNorms are folded away
    no: int  # outputs per anchor


UPSTREAM = {
    "yolov5n": Upstream(1_872_157, 214, 125, "4.6", 11_406_848, 1_536, 1_867_405, 157, 11_170_304, 85),
    "yolov5s": Upstream(7_235_389, 214, 125, "16.6", 41_556_992, 3_072, 7_225_885, 157, 41_083_904, 85),
    "yolov5m": Upstream(21_190_557, 291, 169, "49.2", 123_087_360, 4_608, 21_172_173, 212, 122_181_120, 85),
    "yolov5l": Upstream(46_563_709, 368, 213, "109.6", 273_954_816, 6_144, 46_533_693, 267, 272_484_352, 85),
    "yolov5x": Upstream(86_749_405, 445, 257, "206.3", 515_786_240, 7_680, 86_705_005, 322, 513_620_480, 85),
    "yolov5s-seg": Upstream(7_621_277, 225, 132, "26.6", 66_460_672, 11_264, 7_611_485, 165, 65_889_280, 117),
}

P3_ANCHORS = ((1.25, 1.625), (2.0, 3.75), (4.125, 2.875))
P5_ANCHORS = ((3.625, 2.8125), (4.875, 6.1875), (11.65625, 10.1875))


def nearest_upsample_ops_per_element() -> int:
    """What the installed thop charges per output element of a nearest upsample.

    ultralytics-thop 2.0 and 2.1 charge 1 (so the 32x32 probe of yolov5s is 41,563,136 FLOPs); 2.2 charges 0
    (41,556,992). The GFLOPs print the same either way.
    """
    macs, _ = thop.profile(
        nn.Upsample(scale_factor=2, mode="nearest"), inputs=(torch.zeros(1, 1, 1, 1),), verbose=False
    )
    return int(macs) // 4


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_shipped_config_matches_upstream(name):
    expected = UPSTREAM[name]
    torch.manual_seed(0)
    built = build(load_spec(name))
    model = built.model
    head = model.head
    biases = [conv.bias.detach().clone().view(head.na, -1) for conv in head.m]
    assert (built.params, built.layers) == (expected.params, 25)

    probe = stride_probe(model)
    assert probe.input_shape == (1, 3, 256, 256)
    assert probe.output_shapes == tuple((1, 3, side, side, expected.no) for side in (32, 16, 8))
    assert probe.strides == (8.0, 16.0, 32.0)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert probe.anchors[0] == P3_ANCHORS and probe.anchors[2] == P5_ANCHORS
    assert not probe.anchors_reversed
    for level, (conv, before, stride) in enumerate(zip(head.m, biases, (8, 16, 32), strict=True)):
        offset = conv.bias.detach().view(head.na, -1) - before
        objectness = math.log(8 / (640 / stride) ** 2)
        assert probe.objectness_offsets[level] == pytest.approx(objectness)
        torch.testing.assert_close(offset[:, 4], torch.full((3,), objectness))
        torch.testing.assert_close(offset[:, 5:85], torch.full((3, 80), math.log(0.6 / (80 - 0.99999))))
        torch.testing.assert_close(offset[:, 85:], torch.zeros(3, expected.no - 85))  # mask coefficients
    assert probe.class_offset == pytest.approx(math.log(0.6 / 79.00001))

    profile = info_profile(model)
    assert (profile.params, profile.gradients) == (expected.params, expected.params)
    assert (profile.modules, profile.leaf_modules) == (expected.modules, expected.leaf_modules)
    assert (profile.probe_size, profile.imgsz) == (32, 640)
    nearest = nearest_upsample_ops_per_element()
    assert profile.probe_flops == expected.conv_bn_flops + 2 * nearest * expected.upsample_elements
    assert f"{profile.gflops:.1f}" == expected.gflops

    fused = fuse(model)
    assert (fused.params_before, fused.params_after) == (expected.params, expected.fused_params)
    assert fused.profile.modules == expected.fused_modules
    assert fused.profile.probe_flops == expected.fused_conv_flops + 2 * nearest * expected.upsample_elements


def test_yolov5s_summary_is_upstreams_line(probed):
    assert info_profile(probed("yolov5s")).summary == (
        "YOLOv5s summary: 214 layers, 7235389 parameters, 7235389 gradients, 16.6 GFLOPs"
    )


def test_gflops_scale_with_the_image_size(probed):
    model = probed("yolov5s")
    at_640, at_320 = info_profile(model).gflops, info_profile(model, imgsz=320).gflops
    assert at_320 == pytest.approx(at_640 / 4)
    assert info_profile(model, imgsz=320).probe_flops == info_profile(model).probe_flops


def test_nc_override_changes_the_head_and_its_class_prior():
    torch.manual_seed(0)
    model = yolospan.build_model("yolov5s", nc=3)
    head = model.head
    assert (head.nc, head.no, model.nc, model.names) == (3, 8, 3, ["0", "1", "2"])
    assert [conv.out_channels for conv in head.m] == [24, 24, 24]
    removed = 3 * 77 * ((128 + 1) + (256 + 1) + (512 + 1))  # 77 fewer outputs per anchor, weights and bias
    assert sum(p.numel() for p in model.parameters()) == 7_235_389 - removed


def test_the_stride_probe_trains_batchnorm_once_then_sets_upstreams_init(probed):
    model = probed("yolov5n")
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(batchnorms) == 57
    for bn in batchnorms:
        assert (bn.eps, bn.momentum, int(bn.num_batches_tracked)) == (1e-3, 0.03, 1)
        # zeros in, zeros through every BatchNorm in training mode: var' = 0.9 * 1 + 0.1 * 0
        torch.testing.assert_close(bn.running_var, torch.full_like(bn.running_var, 0.9))
        torch.testing.assert_close(bn.running_mean, torch.zeros_like(bn.running_mean))
    activations = {id(m.act) for m in model.modules() if isinstance(m, Conv)}
    assert len(activations) == 1  # one shared SiLU, as upstream's class-level default
    assert next(m.act for m in model.modules() if isinstance(m, Conv)).inplace


def test_the_stride_probe_reports_the_batchnorm_updates_and_restores_the_mode(tiny_yaml):
    model = build(load_spec(tiny_yaml)).model.eval()
    probe = stride_probe(model)
    assert probe.batchnorm_updates == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not model.training
    assert probe.strides == (4.0, 8.0)
    with pytest.raises(RuntimeError, match="already ran"):
        stride_probe(model)


def test_anchors_listed_against_the_strides_are_flipped(tiny_yaml):
    text = tiny_yaml.read_text().replace("[10,13, 16,30]", "[130,61, 62,145]", 1)
    tiny_yaml.write_text(text)
    model = build(load_spec(tiny_yaml)).model
    probe = stride_probe(model)
    assert probe.anchors_reversed
    assert probe.anchors == (((30 / 4, 61 / 4), (62 / 4, 45 / 4)), ((130 / 8, 61 / 8), (62 / 8, 145 / 8)))


def test_an_anchor_count_builds_placeholder_anchors(tiny_yaml):
    model = build(load_spec(tiny_yaml, anchors=3)).model
    probe = stride_probe(model)
    assert probe.anchors[0] == ((0.0, 0.25), (0.5, 0.75), (1.0, 1.25))
    assert model.head.na == 3


def test_info_profile_leaves_the_model_untouched(probed):
    model = probed("yolov5n").train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    info_profile(model)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not any("total_ops" in vars(m) or "total_ops" in m._buffers for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_cores_forward_flops_equal_thop_profile(name, spans):
    """yolospan counts FLOPs during the traced forward; the total must be thop.profile's, for every config."""
    model = build(load_spec(name)).model.eval()
    model.head.stride = torch.tensor([8.0, 16.0, 32.0])
    image = torch.zeros(1, 3, 32, 32)
    macs, _ = thop.profile(copy.deepcopy(model), inputs=(image,), verbose=False)
    with yolospan.instrument(model):
        model(image)
    spans.assert_names([A.SPAN_FORWARD])
    spans.one(A.SPAN_FORWARD, flops=round(2 * macs))


def test_fusing_keeps_the_output_and_recounts_flops(tiny_yaml, spans):
    model = yolospan.build_model(tiny_yaml).eval()
    spans.clear()  # forget the build: only the forwards around the fuse count
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = model(image)[0]
    with yolospan.instrument(model):
        model(image)
        result = fuse(model)
        model(image)
    with torch.no_grad():
        after = model(image)[0]
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert result.folded == sum(isinstance(m, Conv) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(not m.conv.weight.requires_grad for m in model.modules() if isinstance(m, Conv))
    first, second = spans.assert_count(2, A.SPAN_FORWARD, phase=None)
    assert second.attributes[A.FLOPS_METHOD] == "thop"  # recounted after fusing, not the cached count
    assert second.attributes[A.FLOPS] < first.attributes[A.FLOPS]  # BatchNorm's share is gone
    assert spans.one(A.SPAN_INFO_PROFILE).parent is spans.one(A.SPAN_FUSE)


def test_segment_protos_scale_with_width(probed):
    head = probed("yolov5s-seg").head
    assert isinstance(head, Segment)
    assert (head.masks, head.protos, head.no) == (32, 128, 117)
    assert head.proto.cv1.conv.out_channels == 128 and head.proto.cv3.conv.out_channels == 32
