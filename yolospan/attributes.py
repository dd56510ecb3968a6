"""The span contract: every span name and attribute key yolospan emits.

Users search Jaeger and write test assertions with these strings, so they are public API and live
in this one module. ``docs/span-contract.md`` is checked against it by the test suite.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "yolospan"
"""Prefix of every attribute key below."""

# --- span names -------------------------------------------------------------------------------

SPAN_MODEL_INIT: Final = "model.init"
"""Root span of creating a model: build, stride probe, info profile, AMP check."""

SPAN_STRIDE_PROBE: Final = "stride_probe"
"""Phase: one forward of zeros to learn the strides from the head's output maps."""

SPAN_INFO_PROFILE: Final = "info_profile"
"""Phase: parameter/gradient/layer counts and one FLOPs-counting forward."""

SPAN_AMP_CHECK: Final = "amp_check"
"""Phase: the same image in fp32 and under autocast, compared (two forwards, or none when skipped)."""

SPAN_FUSE: Final = "fuse"
"""Phase: Conv+BatchNorm folding for inference."""

SPAN_FORWARD: Final = "forward"
"""One call of an instrumented module. Layer spans are named after the layer's type instead."""

PHASE_SPAN_NAMES: Final = (SPAN_STRIDE_PROBE, SPAN_INFO_PROFILE, SPAN_AMP_CHECK, SPAN_FUSE)
"""The phases of model creation, in the order upstream YOLOv5 runs them (fuse only on request)."""

# --- every forward and layer span ---------------------------------------------------------------

PHASE: Final = "yolospan.phase"
"""str: the phase a span belongs to; set on phase spans and on every forward/layer span inside one."""

INPUT_SHAPE: Final = "yolospan.input.shape"
"""int[]: shape of the first tensor argument (depth-first through lists/tuples/dicts)."""

INPUT_SHAPE_TEMPLATE: Final = "yolospan.input.{index}.shape"
"""int[]: shape of the ``index``-th tensor argument, set only when a call receives several tensors."""

INPUT_COUNT: Final = "yolospan.input.count"
"""int: number of tensor arguments, found depth-first (a Concat layer receives several)."""

INPUT_DTYPE: Final = "yolospan.input.dtype"
"""str: dtype of the first tensor argument without the ``torch.`` prefix, e.g. ``float32``."""

DEVICE: Final = "yolospan.device"
"""str: device of the first tensor argument, e.g. ``cpu`` or ``cuda:0``."""

TRAINING: Final = "yolospan.training"
"""bool: the module's ``training`` flag during this call."""

AUTOCAST: Final = "yolospan.autocast"
"""str: the autocast dtype in effect for the input's device (e.g. ``float16``), absent when off."""

OUTPUT_COUNT: Final = "yolospan.output.count"
"""int: number of tensors in the output, flattened depth-first (Detect's ``(pred, [p3, p4, p5])`` is 4)."""

OUTPUT_SHAPE_TEMPLATE: Final = "yolospan.output.{index}.shape"
"""int[]: shape of the ``index``-th output tensor in depth-first order; at most ``MAX_INDEXED`` are kept."""

OUTPUT_DTYPE: Final = "yolospan.output.dtype"
"""str: dtype of the first output tensor."""

FLOPS: Final = "yolospan.flops"
"""int: 2 x multiply-accumulates of this call by thop's per-module rules, at this call's shapes."""

FLOPS_METHOD: Final = "yolospan.flops.method"
"""str: how ``yolospan.flops`` was obtained: ``thop`` (counted during this call) or ``thop.cached``."""

FLOPS_TORCH: Final = "yolospan.flops.torch"
"""int: FLOPs of this call by PyTorch's ``torch.utils.flop_counter.FlopCounterMode``, counted in the
same first forward of each signature as ``yolospan.flops``; set only when asked for (``--flops
thop,torch``). It charges matmuls and convolutions only, so BatchNorm and upsampling count 0."""

DEVICE_TIME_MS: Final = "yolospan.device_time_ms"
"""float: on CUDA, milliseconds the device spent between the call's start and end (CUDA events on
the current stream), beside the span's wall-clock times, which on a GPU measure kernel launches.
Set after the fact: the span is ended once its events completed (see docs/performance.md)."""

ACHIEVED_FLOPS_PER_S: Final = "yolospan.achieved_flops_per_s"
"""float: ``yolospan.flops`` over the call's time: ``yolospan.device_time_ms`` on CUDA, the span's
wall-clock duration on the CPU. Absent on CUDA when the device time could not be read."""

PEAK_FLOPS_PER_S: Final = "yolospan.peak_flops_per_s"
"""float: the device's dense peak FLOP/s for the call's compute dtype (autocast's, TF32 for float32
convolutions on CUDA while cuDNN allows it), from NVIDIA's datasheets or ``YOLOSPAN_PEAK_FLOPS``;
absent for a device yolospan does not know (never estimated)."""

PEAK_FRACTION: Final = "yolospan.peak_fraction"
"""float: ``yolospan.achieved_flops_per_s`` over ``yolospan.peak_flops_per_s`` (0.42 is 42 % of peak);
set only where the peak is known."""

MAX_INDEXED: Final = 32
"""Indexed attributes per span are capped so a span stays well inside the SDK's 128-attribute limit."""

# --- layer spans --------------------------------------------------------------------------------

LAYER_INDEX: Final = "yolospan.layer.index"
"""int: position of the layer in the model's layer list (YOLO's ``i``; child order otherwise)."""

LAYER_TYPE: Final = "yolospan.layer.type"
"""str: the layer's type name, also the span's name (``Conv``, ``C3``, ``Detect``, ...)."""

LAYER_FROM: Final = "yolospan.layer.from"
"""int[]: the layers this one reads (YOLO's ``from`` column; -1 is the previous layer)."""

LAYER_PARAMS: Final = "yolospan.layer.params"
"""int: number of parameters of the layer."""

# --- model.init -------------------------------------------------------------------------------

MODEL_NAME: Final = "yolospan.model.name"
"""str: the config's name (``yolov5s``) or the YAML file's stem."""

MODEL_NC: Final = "yolospan.model.nc"
"""int: number of classes."""

MODEL_PARAMS: Final = "yolospan.model.params"
"""int: number of parameters after creation."""

MODEL_LAYERS: Final = "yolospan.model.layers"
"""int: number of layers in the config (rows of backbone + head)."""

MODEL_STRIDE: Final = "yolospan.model.stride"
"""int[]: strides of the detection levels learnt by the stride probe, e.g. ``[8, 16, 32]``."""

WEIGHTS_SOURCE: Final = "yolospan.model.weights.source"
"""str: which weights the model runs with: ``random`` (initialisation), ``ema`` or ``model`` (of a
yolospan training checkpoint) or ``state_dict`` (a plain state dict). Also on ``amp_check``."""

WEIGHTS_PATH: Final = "yolospan.model.weights.path"
"""str: the weights file, as given; absent with random weights. Also on ``amp_check``."""

# --- info_profile -------------------------------------------------------------------------------

GFLOPS: Final = "yolospan.gflops"
"""float: GFLOPs at ``yolospan.profile.imgsz`` (scaled from the probe forward), rounded to 0.1 as printed."""

PROFILE_IMGSZ: Final = "yolospan.profile.imgsz"
"""int: image size the GFLOPs are reported at (default 640)."""

PROFILE_INPUT: Final = "yolospan.profile.input"
"""int: side of the square probe input actually run (max(max stride, 32))."""

PARAMS: Final = "yolospan.params"
"""int: parameter count reported by the profile."""

GRADIENTS: Final = "yolospan.gradients"
"""int: number of parameters that require gradients."""

LAYERS: Final = "yolospan.layers"
"""int: module count reported by the profile (all modules, as upstream v7.0 prints it)."""

# --- fuse ---------------------------------------------------------------------------------------

FUSE_FOLDED: Final = "yolospan.fuse.folded"
"""int: number of Conv+BatchNorm pairs folded into single convs."""

# --- amp_check ----------------------------------------------------------------------------------

AMP_RESULT: Final = "yolospan.amp.result"
"""str: ``passed``, ``failed`` or ``skipped``."""

AMP_REASON: Final = "yolospan.amp.reason"
"""str: why the check passed, failed or was skipped."""

AMP_DTYPE: Final = "yolospan.amp.dtype"
"""str: the autocast dtype compared against fp32 (``float16`` on CUDA, ``bfloat16`` on CPU)."""

AMP_MAX_ABS_DIFF: Final = "yolospan.amp.max_abs_diff"
"""float: largest absolute difference between the fp32 and autocast raw predictions."""

AMP_INPUT_SHAPE: Final = "yolospan.amp.input.shape"
"""int[]: the letterboxed image tensor both forwards ran on, e.g. ``[1, 3, 640, 480]``."""

AMP_COMPARED: Final = "yolospan.amp.compared"
"""str: what was compared (raw predictions, and the post-NMS boxes as upstream does)."""

AMP_ENABLED: Final = "yolospan.amp.enabled"
"""bool: what upstream's own ``check_amp`` returned, i.e. whether its training uses AMP (instrumentors).
Not the same as the verdict: ultralytics keeps AMP on when its check is skipped offline."""

# --- training -----------------------------------------------------------------------------------

SPAN_TRAIN_STEP: Final = "train_step"
"""Root of one traced training step, its own trace: forward, loss, backward, optimizer_step inside."""

SPAN_LOSS: Final = "loss"
"""Child of ``train_step``: computing the loss from the forward's output and the targets."""

SPAN_BACKWARD: Final = "backward"
"""Child of ``train_step``: back-propagating the (scaled) loss."""

SPAN_OPTIMIZER_STEP: Final = "optimizer_step"
"""Child of ``train_step`` when the optimizer steps (not on steps that only accumulate gradients)."""

PHASE_TRAIN: Final = "train"
"""Phase of the ``train_step`` span and of the training forwards inside it."""

PHASE_VAL: Final = "val"
"""Phase of validation forwards; also the name of the span of one validation pass (its own trace)."""

SPAN_EPOCH: Final = "epoch"
"""Root of one training epoch of an upstream trainer (its own trace): steps, mean losses, lr, fitness."""

TRAINING_SPAN_NAMES: Final = (
    SPAN_TRAIN_STEP,
    SPAN_LOSS,
    SPAN_BACKWARD,
    SPAN_OPTIMIZER_STEP,
    PHASE_VAL,
    SPAN_EPOCH,
)
"""The unit-of-work spans of training, besides ``forward`` and the ``model.init`` trace."""

TRAINING_PHASES: Final = (PHASE_TRAIN, PHASE_VAL)
"""Values of ``yolospan.phase`` during training."""

RUN_ID: Final = "yolospan.run.id"
"""str: one id for a whole training run, on every span of it (init, steps, validation, forwards)."""

EPOCH: Final = "yolospan.epoch"
"""int: the epoch, counted from 0 (upstream prints it as ``epoch/epochs - 1``)."""

STEP: Final = "yolospan.step"
"""int: the global step: batches since the run started, counted from 0 across epochs."""

BATCH_SHAPE: Final = "yolospan.batch.shape"
"""int[]: shape of the step's image batch, e.g. ``[16, 3, 640, 640]``."""

BATCH_TARGETS: Final = "yolospan.batch.targets"
"""int: labelled boxes in the step's batch."""

LR: Final = "yolospan.lr"
"""float: learning rate of the optimizer's first parameter group (yolospan's trainer: conv weights)."""

LOSS_BOX: Final = "yolospan.loss.box"
"""float: box (CIoU) loss of the step, gain applied, per image as upstream reports it."""

LOSS_OBJ: Final = "yolospan.loss.obj"
"""float: objectness loss, gain and level balance applied."""

LOSS_CLS: Final = "yolospan.loss.cls"
"""float: classification loss, gain applied (0 for a single-class model)."""

LOSS_DFL: Final = "yolospan.loss.dfl"
"""float: distribution focal loss, gain applied (ultralytics' anchor-free heads: box, cls, dfl)."""

LOSS_TOTAL: Final = "yolospan.loss.total"
"""float: box + obj + cls; the tensor back-propagated is this times the batch size, as upstream."""

LOSS_COMPONENT: Final = "yolospan.loss.component"
"""str: on loss metric points: ``box``, ``obj``, ``cls`` or ``total`` (ultralytics: ``dfl``, no ``obj``)."""

ACCUMULATE: Final = "yolospan.optimizer.accumulate"
"""int: batches whose gradients this optimizer step applies (upstream accumulates to 64 images)."""

GRAD_NORM: Final = "yolospan.grad.norm"
"""float: total gradient norm before clipping (clipped to 10, as upstream), absent if not finite."""

SCALER_SCALE: Final = "yolospan.scaler.scale"
"""float: the AMP gradient scaler's scale after this step (set only when the scaler is enabled)."""

SCALER_SKIPPED: Final = "yolospan.scaler.skipped"
"""bool: the scaler found inf/NaN gradients and skipped the optimizer step (its scale went down)."""

RANK: Final = "yolospan.rank"
"""int: ``torch.distributed`` rank of the process, set only when a process group is initialised."""

WORLD_SIZE: Final = "yolospan.world_size"
"""int: number of processes in the ``torch.distributed`` process group (set with ``yolospan.rank``)."""

FITNESS: Final = "yolospan.fitness"
"""float: upstream's fitness after an epoch's validation (ultralytics: 0.1 mAP50 + 0.9 mAP50-95)."""

VAL_IMAGES: Final = "yolospan.val.images"
"""int: images in one validation pass; the ``val`` span also carries the mean ``yolospan.loss.*``."""


def output_shape_key(index: int) -> str:
    """Key of the ``index``-th flattened output's shape."""
    return OUTPUT_SHAPE_TEMPLATE.format(index=index)


def input_shape_key(index: int) -> str:
    """Key of the ``index``-th tensor argument's shape, set when a call receives several tensors."""
    return INPUT_SHAPE_TEMPLATE.format(index=index)


__all__ = [name for name in dir() if name.isupper() or name.endswith("_key")]
