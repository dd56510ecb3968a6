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
import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.yolo import build, fuse, info_profile, load_spec, stride_probe
from yolospan.yolo.blocks import Conv
from yolospan.yolo.heads import Segment


@dataclass(frozen=True)
class Upstream:
    """Upstream v7.0's printed figures, and FLOP counts derived by formula (see `_by_formula`).

    The FLOP fields are for the 32x32 probe of ``info_profile`` and follow upstream's convention
    (thop's rules, 2 FLOPs per multiply-accumulate): a conv costs 2 x output elements x input
    channels / groups x kernel area (its bias is free), an affine BatchNorm 4 x 2 per element,
    a nearest upsample 1 x 2 per output element. `test_shipped_config_matches_upstream` recomputes
    each from the layer shapes by those formulas, and their total at 640 prints upstream's published
    GFLOPs (yolov5s: (41,556,992 + 2 x 3,072) x (640/32)^2 = 16.63e9, "16.6 GFLOPs");
    `test_the_tiny_configs_flops_by_hand` checks the formulas layer by layer against arithmetic.
    """

    params: int
    modules: int  # upstream v7.0's "layers": every module in the tree
    leaf_modules: int  # master-style count of modules without children
    gflops: str  # at 640, as printed
    conv_bn_flops: int  # of the 32x32 probe, from convs and BatchNorms
    upsample_elements: int  # nearest-upsample outputs of the 32x32 probe, 2 FLOPs each
    fused_params: int
    fused_modules: int
    fused_conv_flops: int  # conv_bn_flops once the BatchNorms are folded away
    no: int  # outputs per anchor

    @property
    def probe_flops(self) -> int:
        return self.conv_bn_flops + 2 * self.upsample_elements


UPSTREAM = {
    "yolov5n": Upstream(1_872_157, 214, 125, "4.6", 11_406_848, 1_536, 1_867_405, 157, 11_170_304, 85),
    "yolov5s": Upstream(7_235_389, 214, 125, "16.6", 41_556_992, 3_072, 7_225_885, 157, 41_083_904, 85),
    "yolov5m": Upstream(21_190_557, 291, 169, "49.2", 123_087_360, 4_608, 21_172_173, 212, 122_181_120, 85),
    "yolov5l": Upstream(46_563_709, 368, 213, "109.6", 273_954_816, 6_144, 46_533_693, 267, 272_484_352, 85),
    "yolov5x": Upstream(86_749_405, 445, 257, "206.3", 515_786_240, 7_680, 86_705_005, 322, 513_620_480, 85),
    "yolov5s-seg": Upstream(7_621_277, 225, 132, "26.6", 66_460_672, 11_264, 7_611_485, 165, 65_889_280, 117),
}


def _by_formula(model: nn.Module, image: torch.Tensor) -> tuple[int, int, int]:
    """(conv FLOPs, BatchNorm FLOPs, nearest-upsample output elements) of one eval forward, by the
    formulas of `Upstream`, from each layer's real shapes: no thop, no yolospan counting."""
    conv = bn = upsampled = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal conv, bn, upsampled
        if isinstance(module, nn.Conv2d):
            kernel_area = module.kernel_size[0] * module.kernel_size[1]
            conv += 2 * output.numel() * (module.in_channels // module.groups) * kernel_area
        elif isinstance(module, nn.BatchNorm2d):
            bn += 2 * 4 * args[0].numel()
        elif isinstance(module, nn.Upsample) and module.mode == "nearest":
            upsampled += output.numel()

    target = copy.deepcopy(model).eval()  # the eval forward info_profile runs, on a copy as it does
    for module in target.modules():
        module.register_forward_hook(hook)
    with torch.no_grad():
        target(image)
    return conv, bn, upsampled


P3_ANCHORS = ((1.25, 1.625), (2.0, 3.75), (4.125, 2.875))
P5_ANCHORS = ((3.625, 2.8125), (4.875, 6.1875), (11.65625, 10.1875))


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
    assert profile.probe_flops == expected.probe_flops
    assert f"{profile.gflops:.1f}" == expected.gflops
    conv, bn, upsampled = _by_formula(model, torch.zeros(1, 3, 32, 32))
    assert (conv + bn, upsampled) == (expected.conv_bn_flops, expected.upsample_elements)

    fused = fuse(model)
    assert (fused.params_before, fused.params_after) == (expected.params, expected.fused_params)
    assert fused.profile.modules == expected.fused_modules
    assert fused.profile.probe_flops == expected.fused_conv_flops + 2 * expected.upsample_elements
    assert _by_formula(model, torch.zeros(1, 3, 32, 32)) == (expected.fused_conv_flops, 0, upsampled)


@pytest.mark.flops
def test_yolov5s_summary_is_upstreams_line(probed):
    assert info_profile(probed("yolov5s")).summary == (
        "YOLOv5s summary: 214 layers, 7235389 parameters, 7235389 gradients, 16.6 GFLOPs"
    )


@pytest.mark.flops
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


@pytest.mark.flops
@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_cores_forward_flops_are_upstreams(name, spans):
    """yolospan counts FLOPs during the traced forward; the 32x32 total is upstream's, for every config."""
    model = build(load_spec(name)).model.eval()
    model.head.stride = torch.tensor([8.0, 16.0, 32.0])
    with yolospan.instrument(model):
        model(torch.zeros(1, 3, 32, 32))
    spans.assert_names([A.SPAN_FORWARD])
    spans.one(A.SPAN_FORWARD, flops=UPSTREAM[name].probe_flops)


# The tiny config (tests/yolo/yolo_tiny.py) at info_profile's 32x32 probe, counted by hand with the
# formulas of `Upstream`, as multiply-accumulates (FLOPs are twice these). A Conv is conv + BN:
# conv MACs = output elements x input channels x kernel area, BN MACs = 4 x elements.
_TINY_MACS = {
    0: 8 * 16 * 16 * 3 * 9 + 4 * 8 * 16 * 16,  # Conv 3→8, k3 s2: out 8x16x16
    1: 16 * 8 * 8 * 8 * 9 + 4 * 16 * 8 * 8,  # Conv 8→16, k3 s2: out 16x8x8
    2: (
        2 * (8 * 64 * 16 + 4 * 8 * 64)  # C3 16→16 (hidden 8) at 8x8: cv1, cv2 1x1 16→8
        + (8 * 64 * 8 + 4 * 8 * 64)  # bottleneck cv1 1x1 8→8
        + (8 * 64 * 8 * 9 + 4 * 8 * 64)  # bottleneck cv2 3x3 8→8
        + (16 * 64 * 16 + 4 * 16 * 64)  # cv3 1x1 16→16
    ),
    3: 32 * 4 * 4 * 16 * 9 + 4 * 32 * 4 * 4,  # Conv 16→32, k3 s2: out 32x4x4
    4: (16 * 16 * 32 + 4 * 16 * 16) + (32 * 16 * 64 + 4 * 32 * 16),  # SPPF: cv1 32→16, cv2 64→32 at 4x4
    5: 32 * 8 * 8,  # nearest upsample x2: one op per output element, 32x8x8
    6: 0,  # Concat
    7: (
        2 * (8 * 64 * 48 + 4 * 8 * 64)  # C3 48→16 (hidden 8), no shortcut: cv1, cv2 1x1 48→8
        + (8 * 64 * 8 + 4 * 8 * 64)
        + (8 * 64 * 8 * 9 + 4 * 8 * 64)
        + (16 * 64 * 16 + 4 * 16 * 64)
    ),
    8: 14 * 8 * 8 * 16 + 14 * 4 * 4 * 32,  # Detect: 1x1 convs 16→14 at 8x8 and 32→14 at 4x4 (bias free)
}


@pytest.mark.flops
def test_the_tiny_configs_flops_by_hand(tiny_yaml, spans):
    assert 2 * sum(_TINY_MACS.values()) == 978_944  # the arithmetic above, summed once by hand
    model = yolospan.build_model(tiny_yaml)
    assert info_profile(model).probe_flops == 978_944
    conv, bn, upsampled = _by_formula(model, torch.zeros(1, 3, 32, 32))
    assert conv + bn + 2 * upsampled == 978_944  # the formula helper the UPSTREAM table is checked with
    spans.clear()
    model.eval()
    with yolospan.instrument(model, layers=True):
        model(torch.zeros(1, 3, 32, 32))
    layers = {
        s.attributes[A.LAYER_INDEX]: s.attributes[A.FLOPS] for s in spans if A.LAYER_INDEX in s.attributes
    }
    assert layers == {index: 2 * macs for index, macs in _TINY_MACS.items()}
    spans.one(A.SPAN_FORWARD, flops=978_944)


@pytest.mark.flops
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
