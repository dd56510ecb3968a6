from __future__ import annotations

import pytest
import torch

from yolospan.train import CHECKPOINT_KEYS, CheckpointError, load_checkpoint, save_checkpoint


def _save(path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return save_checkpoint(
        path,
        epoch=3,
        run_id="r-1",
        model=model.state_dict(),
        ema=model.state_dict(),
        ema_updates=7,
        optimizer=optimizer.state_dict(),
        config={"cfg": "yolov5n", "nc": 2},
    )


def test_a_checkpoint_round_trips(tmp_path):
    path = _save(tmp_path / "weights" / "last.pt")
    content = load_checkpoint(path)
    assert set(content) == set(CHECKPOINT_KEYS)
    assert (content["epoch"], content["run_id"], content["ema_updates"]) == (3, "r-1", 7)
    assert content["config"] == {"cfg": "yolov5n", "nc": 2}
    assert not (tmp_path / "weights" / "last.pt.partial").exists()


def test_a_missing_or_foreign_file_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a yolospan checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_an_unwritable_destination_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        _save(tmp_path / "file" / "last.pt")
