"""Sweep worker bodies for ``spawn``-ed test processes (importable, and light to import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_after_all_checked(sweep_dir: str, barrier: Any, results: Any) -> None:
    """Open the sweep's default storage, holding the first ``CREATE TABLE`` at ``barrier``.

    Every worker has then looked for the schema and found none, so all of them create it at
    once: the losers see "table ... already exists" on every run, not by luck of timing. Puts
    ``(outcome, raced)``: ``"ok"`` or the error line, and whether a database error was seen.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from sentiment_hf.config.recipe import SweepConfig
    from sentiment_hf.errors import SentimentError
    from sentiment_hf.sweep import open_storage

    held, raced = [], []

    @event.listens_for(Engine, "before_cursor_execute")
    def _hold(conn, cursor, statement, parameters, context, executemany) -> None:
        if not held and statement.lstrip().upper().startswith("CREATE TABLE"):
            held.append(statement)
            barrier.wait(timeout=240)

    @event.listens_for(Engine, "handle_error")
    def _seen(context) -> None:
        raced.append(str(context.original_exception))

    try:
        open_storage(SweepConfig(), Path(sweep_dir))
        results.put(("ok", bool(raced)))
    except SentimentError as exc:
        results.put((str(exc), bool(raced)))
