"""Finding and reading a model config: a shipped name (``yolov5s``) or the path of a user's YAML file.

The shipped configs live in the repository's top-level ``models/`` folder, where YOLOv5 users look
for them; a wheel carries them inside the package as ``yolospan/_configs/`` (never as a top-level
``models`` module, which would clash with upstream's). `config_dir` is the one place that knows
both. YAML is parsed with ``safe_load`` only: tags that would construct Python objects are a
parse error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from yolospan.errors import UserError
from yolospan.inputs import load_yaml, read_regular_file
from yolospan.yolo.errors import ConfigError

__all__ = ["RawConfig", "config_dir", "read_config", "shipped_configs"]

_MAX_BYTES = 1 << 20  # far above any real config; keeps a wrong file from being parsed at length
_MAX_NODES = 10_000  # YAML nodes, aliases expanded: a shipped config has about 400
_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RawConfig:
    """A parsed but unvalidated config and the names messages and spans use for it."""

    name: str  # model name: the file's stem, e.g. "yolov5s"
    label: str  # how messages refer to the source: a file path or "yolov5s.yaml"
    data: object


_PACKAGE: Path = Path(__file__).resolve().parent.parent


@cache
def config_dir() -> Path:
    """The folder of the shipped configs: inside an installed wheel, else the checkout's ``models/``."""
    for candidate in (_PACKAGE / "_configs", _PACKAGE.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"the shipped model configs are missing: neither {_PACKAGE / '_configs'} nor "
        f"{_PACKAGE.parent / 'models'} exists; reinstall yolospan"
    )


@cache
def shipped_configs() -> tuple[str, ...]:
    """Names of the configs that ship with yolospan, e.g. ``('yolov5l', 'yolov5m', ...)``."""
    return tuple(
        sorted(
            entry.name[: -len(".yaml")] for entry in config_dir().iterdir() if entry.name.endswith(".yaml")
        )
    )


def read_config(cfg: str | os.PathLike[str]) -> RawConfig:
    """Resolve ``cfg`` (an existing file first, then a shipped name) and parse it as YAML."""
    path = Path(cfg)
    text = str(cfg)
    if path.is_file():
        return _parse(path.stem, text, _read_file(path, text))
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if not any(sep in text for sep in ("/", os.sep)) and stem in shipped_configs():
        data = (config_dir() / f"{stem}.yaml").read_bytes()
        return _parse(stem, f"{stem}.yaml", data)
    if path.exists():
        raise ConfigError(f"{text}: not a file; give the path of a YAML model config")
    if path.suffix in _SUFFIXES or any(sep in text for sep in ("/", os.sep)):
        raise ConfigError(f"{text}: config file not found")
    raise ConfigError(
        f"unknown model {text!r}: use one of {', '.join(shipped_configs())} or the path of a YAML config"
    )


def _read_file(path: Path, label: str) -> bytes:
    try:
        return read_regular_file(path, "model config", max_bytes=_MAX_BYTES)
    except UserError as error:
        raise ConfigError(str(error)) from None


def _parse(name: str, label: str, data: bytes) -> RawConfig:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not a YAML config (the file is not UTF-8 text)") from None
    parsed = load_yaml(text, label, max_nodes=_MAX_NODES, error=ConfigError)
    if parsed is None:
        raise ConfigError(f"{label}: the config is empty")
    return RawConfig(name, label, parsed)
