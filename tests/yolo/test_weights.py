"""Real weights: yolospan checkpoints (EMA by default) and plain state dicts, read with weights_only."""

from __future__ import annotations

import pickle

import pytest
import torch
from yolo_tiny import TINY_YAML

import yolospan
from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.train.checkpoint import save_checkpoint
from yolospan.yolo import build_model
from yolospan.yolo.weights import WeightsError, read_weights


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


def trained_like(tiny, seed: int, nc: int | None = None) -> torch.nn.Module:
    """A stride-probed tiny model with every float tensor random (not PyTorch's init), distinct per seed."""
    model = build_model(tiny, nc=nc)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point() and not key.endswith("anchors"):
                value.copy_(torch.rand(value.shape, generator=generator) * 0.5 + 0.25)
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model.eval()(image)[0]  # type: ignore[no-any-return]


def test_a_plain_state_dict_loads_and_the_spans_say_so(tmp_path, tiny, spans):
    source = trained_like(tiny, 1)
    path = tmp_path / "state.pt"
    torch.save(source.state_dict(), path)
    created = yolospan.create_model(tiny, weights=path, amp_check="on")
    assert torch.equal(outputs(created.model), outputs(source))
    assert not torch.equal(outputs(build_model(tiny)), outputs(source))
    assert created.weights is not None and created.weights.source == "state_dict"
    spans.one(A.SPAN_MODEL_INIT, model_weights_source="state_dict", model_weights_path=str(path))
    spans.one(A.SPAN_AMP_CHECK, model_weights_source="state_dict", model_weights_path=str(path))


def test_random_weights_are_said_on_the_spans(tiny, spans):
    created = yolospan.create_model(tiny, amp_check="on")
    assert created.weights is None
    spans.one(A.SPAN_MODEL_INIT, model_weights_source="random", model_weights_path=None)
    spans.one(A.SPAN_AMP_CHECK, model_weights_source="random", model_weights_path=None)


@pytest.mark.parametrize("which", ["ema", "model"])
def test_a_training_checkpoint_loads_its_ema_by_default_and_its_nc(tmp_path, tiny, which):
    raw, ema = trained_like(tiny, 1, nc=5), trained_like(tiny, 2, nc=5)
    path = save_checkpoint(
        tmp_path / "last.pt",
        epoch=0,
        run_id="r",
        model=raw.state_dict(),
        ema=ema.state_dict(),
        ema_updates=1,
        optimizer={},
        config={"cfg": str(tiny), "nc": 5, "imgsz": 64, "epochs": 1},
    )
    kwargs = {} if which == "ema" else {"checkpoint_weights": "model"}
    model = build_model(tiny, weights=path, **kwargs)  # the config says nc 2, the checkpoint 5
    assert model.nc == 5
    assert torch.equal(outputs(model), outputs(ema if which == "ema" else raw))


def test_weights_for_another_shape_are_refused_in_one_line(tmp_path, tiny):
    path = tmp_path / "state.pt"
    torch.save(build_model(tiny, nc=3).state_dict(), path)
    with pytest.raises(WeightsError) as caught:
        build_model(tiny, weights=path)
    assert str(caught.value) == (
        f"{path}: weights do not fit this model: model.8.m.0.weight is [16, 16, 1, 1] in the file "
        "but [14, 16, 1, 1] in the model (another config, or use --nc?)"
    )


def test_missing_keys_are_refused(tmp_path, tiny):
    state = build_model(tiny).state_dict()
    del state["model.0.conv.weight"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"1 key\(s\) missing, e.g. model.0.conv.weight$"):
        build_model(tiny, weights=path)


class _Payload:
    """Unpickling this would create a marker file: what a hostile whole-model checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_whole_model_is_refused_without_running_it(tmp_path, tiny):
    marker = tmp_path / "ran"
    path = tmp_path / "yolov5s.pt"
    torch.save({"model": build_model(tiny), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError) as caught:
        read_weights(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: a pickled whole-model checkpoint (upstream's yolov5s.pt format)")
    assert "attempt_load" in message and ".state_dict()" in message
    assert not marker.exists()


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(
        WeightsError, match=r"junk.pt: not a readable weights file \(no tensors saved by torch.save\)$"
    ):
        read_weights(junk)
    with pytest.raises(WeightsError, match=r"nothere.pt: weights file not found$"):
        read_weights(tmp_path / "nothere.pt")
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    with pytest.raises(WeightsError, match="expected a state dict or a yolospan checkpoint, got list"):
        read_weights(listed)
    with pytest.raises(UserError, match="invalid checkpoint weights 'best': use ema or model"):
        read_weights(listed, checkpoint_weights="best")


def test_pickle_protocol_is_not_used_for_reading(tmp_path):
    """A plain pickle (not a torch file) is refused too."""
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="not a readable weights file"):
        read_weights(path)
