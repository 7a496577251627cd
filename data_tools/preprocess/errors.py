"""The one exception type the CLI turns into a clean `error: ...` line and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's inputs or arguments; the message names the file/key."""
