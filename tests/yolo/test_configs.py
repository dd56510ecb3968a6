from __future__ import annotations

from pathlib import Path

import pytest

from yolospan.yolo import shipped_configs
from yolospan.yolo.configs import read_config
from yolospan.yolo.errors import ConfigError


def test_every_config_yolov5_v7_ships_is_shipped():
    p5 = [f"yolov5{size}" for size in "nsmlx"]
    assert sorted(shipped_configs()) == sorted(
        [
            *p5,
            *(f"{name}6" for name in p5),  # hub: the P6 family
            *(f"{name}-seg" for name in p5),  # segment/
            *(f"yolov5-{head}" for head in ("p2", "p34", "p6", "p7", "fpn", "panet", "bifpn")),
            "yolov5s-ghost",
            "yolov5s-transformer",
            "yolov5s-LeakyReLU",
            "yolov3",
            "yolov3-spp",
            "yolov3-tiny",
        ]
    )


@pytest.mark.parametrize("name", ["yolov5s", "yolov5s.yaml"])
def test_a_shipped_name_resolves_with_or_without_suffix(name):
    raw = read_config(name)
    assert raw.name == "yolov5s"
    assert raw.label == "yolov5s.yaml"
    assert raw.data["width_multiple"] == 0.5


def test_a_user_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("yolov5s.yaml").write_text("nc: 3\n")
    raw = read_config("yolov5s.yaml")
    assert raw.data == {"nc": 3}
    assert raw.label == "yolov5s.yaml"


def test_a_path_names_the_model_after_its_stem(tmp_path):
    path = tmp_path / "custom-net.yml"
    path.write_text("nc: 1\n")
    raw = read_config(path)
    assert (raw.name, raw.label) == ("custom-net", str(path))


def test_python_tags_are_refused_without_running_anything(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"nc: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML: could not determine a constructor"):
        read_config(path)
    assert not marker.exists()
