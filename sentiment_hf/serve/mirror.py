"""The request log's mirror: rows copied from SQLite to an fsspec URL (``gs://bucket/prefix``).

Each upload is one JSON-lines part, ``requests-{stamp}-{first id}-{last id}.jsonl``. Exactly once,
even with several server workers on one database and crashes at any point:

1. Under an exclusive lock on ``DB.mirror.lock`` (``flock``: released when a process dies), the
   mirrorer records the range it is about to upload, ``(last_id, pending_top]``, in
   ``mirror_state`` (committed before any upload).
2. It uploads that range; the part's name depends only on the rows, so a retry after a failure
   or a crash overwrites the same object instead of adding a second copy.
3. Only then it moves ``last_id`` to ``pending_top``. Retention never deletes rows above
   ``last_id`` (see :func:`mirrored_up_to`), so the rows of a pending range stay until uploaded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.serve.logschema import COLUMNS, LoggedPrediction, connect, row_to_prediction

try:
    import fcntl
except ImportError:  # Windows: one process per database (no cross-process lock there)
    fcntl = None  # type: ignore[assignment]

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def lock_path(db: str | Path) -> Path:
    """The lock file that serialises mirroring across the processes sharing ``db``."""
    return Path(f"{db}.mirror.lock")


@contextmanager
def mirror_lock(db: str | Path) -> Iterator[None]:
    """Hold the mirror lock of ``db`` (threads of this process, then other processes)."""
    key = str(Path(db).resolve())
    with _THREAD_LOCKS_GUARD:
        local = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with local:
        if fcntl is None:
            yield
            return
        with open(lock_path(db), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def mirrored_up_to(conn: sqlite3.Connection, url: str) -> int:
    """The highest row id whose upload to ``url`` has completed (0: none yet)."""
    row = conn.execute("SELECT last_id FROM mirror_state WHERE url = ?", (url,)).fetchone()
    return int(row[0]) if row else 0


def part_name(rows: list[LoggedPrediction]) -> str:
    """The object name of one uploaded range (a function of its rows only)."""
    stamp = datetime.fromtimestamp(rows[-1].ts, UTC).strftime("%Y%m%dT%H%M%S")
    return f"requests-{stamp}-{rows[0].id:012d}-{rows[-1].id:012d}.jsonl"


def mirror_new_rows(db: str | Path, url: str, options: dict[str, Any]) -> int:
    """Upload the rows of ``db`` not yet in ``url`` (a pending range first); returns how many.

    Raises whatever the upload raises; the pending range is then retried by the next call.
    """
    import fsspec

    with mirror_lock(db):
        conn = connect(db)
        conn.isolation_level = None  # autocommit: each statement below commits on its own
        try:
            last_id = mirrored_up_to(conn, url)
            state = conn.execute(
                "SELECT pending_top FROM mirror_state WHERE url = ?", (url,)
            ).fetchone()
            top = state[0] if state and state[0] is not None else None
            if top is None:
                top = conn.execute("SELECT max(id) FROM requests").fetchone()[0] or 0
                if top <= last_id:
                    return 0
                conn.execute(
                    "INSERT INTO mirror_state (url, last_id, pending_top) VALUES (?, ?, ?) "
                    "ON CONFLICT(url) DO UPDATE SET pending_top = excluded.pending_top",
                    (url, last_id, top),
                )
            rows = conn.execute(
                f"SELECT id, {', '.join(COLUMNS)} FROM requests WHERE id > ? AND id <= ? "
                "ORDER BY id",
                (last_id, top),
            ).fetchall()
            preds = [row_to_prediction(r) for r in rows]
            if preds:
                payload = "".join(json.dumps(p.__dict__, ensure_ascii=False) + "\n" for p in preds)
                target = f"{url.rstrip('/')}/{part_name(preds)}"
                with fsspec.open(target, "w", encoding="utf-8", **options) as handle:
                    handle.write(payload)
            conn.execute(
                "UPDATE mirror_state SET last_id = ?, pending_top = NULL WHERE url = ?", (top, url)
            )
            return len(preds)
        finally:
            conn.close()


def read_mirror(url: str, storage_options: dict[str, Any]) -> list[LoggedPrediction]:
    """Every row of the ``requests-*.jsonl`` parts under ``url``, ordered by time then id."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        parts = sorted(fs.glob(f"{root.rstrip('/')}/requests-*.jsonl"))
    except Exception as exc:  # unknown protocol, unreachable bucket, no credentials
        raise SentimentError(f"cannot list the request-log mirror {url!r}: {exc}") from exc
    if not parts:
        raise SentimentError(
            f"no requests-*.jsonl parts under {url!r}; point --requests at the --log-mirror URL "
            "of `sentiment serve` or at its SQLite file"
        )
    rows = []
    for part in parts:
        for line in fs.cat_file(part).decode("utf-8").splitlines():
            if line.strip():
                rows.append(LoggedPrediction(**json.loads(line)))
    rows.sort(key=lambda row: (row.ts, row.id or 0))
    return rows
