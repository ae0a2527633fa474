"""The ``sentiment`` command line: every command is a thin call into one library function.

The Typer ``app`` and ``main`` live in :mod:`sentiment_hf.cli.app`; the commands register on it
from :mod:`sentiment_hf.cli.model` (train, sweep, eval, calibrate, explain, export),
:mod:`sentiment_hf.cli.predict` (predict),
:mod:`sentiment_hf.cli.ops` (push-to-hub, serve, drift) and :mod:`sentiment_hf.cli.data`
(data check).
"""

from sentiment_hf.cli import data, model, ops, predict  # noqa: F401  (importing them registers the commands)
from sentiment_hf.cli.app import app, main

__all__ = ["app", "main"]
