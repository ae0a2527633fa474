"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class SentimentError(Exception):
    """A user-facing error: the message names the problem and the fix."""
