"""Many bad label lines: the first few are shown one by one, then one line counts the rest."""

from __future__ import annotations

import logging

from PIL import Image

from yolospan.data import YoloDataset

MAX_PROBLEMS_SHOWN = 5  # yolospan.data.dataset.MAX_PROBLEMS_SHOWN, as docs/training.md says


def test_label_warnings_are_capped_with_a_count(tmp_path, caplog):
    for index in range(12):
        image = tmp_path / "images" / f"{index:02d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
        label = tmp_path / "labels" / f"{index:02d}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("0 0.5 0.5 0.5 0.5\n9 0.5 0.5 0.1 0.1\n")  # class 9 of 3: skipped
    with caplog.at_level(logging.WARNING, logger="yolospan.data.dataset"):
        dataset = YoloDataset.from_root(tmp_path, imgsz=64, nc=3)
    assert len(dataset.problems) == 12  # every problem is still listed
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:MAX_PROBLEMS_SHOWN] == dataset.problems[:MAX_PROBLEMS_SHOWN]
    assert messages[MAX_PROBLEMS_SHOWN:] == [
        f"{12 - MAX_PROBLEMS_SHOWN} more problems in {tmp_path / 'images'} not shown (12 in all)"
    ]
