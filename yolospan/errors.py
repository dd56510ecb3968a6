"""The one exception type for problems a user can fix."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem the user can fix; str() is a complete one-line message."""
