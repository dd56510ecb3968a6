"""The user-fixable failures of building a model: a bad config and an unreadable image."""

from __future__ import annotations

from yolospan.errors import UserError

__all__ = ["ConfigError", "ImageError"]


class ConfigError(UserError):
    """A model config (or an override of it) that cannot be built; the message names file, row and problem."""


class ImageError(UserError):
    """An image that cannot be read or used; the message names the file (or the object) and the problem."""
