"""Request log: every prediction appended to SQLite by a background writer, optionally mirrored.

Requests only put a row on an in-memory queue (never blocked by disk); one writer thread drains
the queue in batches (one transaction per batch), applies the retention policy, and — when a
mirror URL such as ``gs://bucket/prefix`` is configured — a second thread copies new rows there
as JSON-lines part files through fsspec (``serve/mirror.py``: exactly once, across workers).
The table, its row type and the connection live in ``serve/logschema.py`` (shared with the
mirror); the database uses WAL so ``sentiment drift`` can read it while the server writes.

Durability: a row is committed by the writer at most ``flush_interval_s`` after its request was
answered (plus the time one batch takes to write). A SIGKILL of the server loses only the rows
still queued, i.e. those answered in that last window; committed rows survive a crash of the
process (WAL, ``synchronous=NORMAL``; a power loss can also undo the last commits). A graceful
stop (SIGINT/SIGTERM) writes and mirrors everything. Retention never deletes a row the mirror has
not uploaded yet.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment_hf.serve.logschema import COLUMNS, LoggedPrediction, connect, row_to_prediction
from sentiment_hf.serve.mirror import mirror_new_rows, mirrored_up_to, read_mirror

__all__ = [
    "LoggedPrediction",  # the row type, defined in logschema: imported from here by its users
    "RequestLog",
    "RequestLogConfig",
    "read_requests",
]

log = logging.getLogger(__name__)


@dataclass
class RequestLogConfig:
    """Where and how predictions are logged.

    ``retention_days`` / ``max_rows`` bound the table (None keeps everything); ``mirror`` is an
    fsspec URL (``gs://bucket/prefix``) that receives new rows every ``mirror_interval_s``.
    """

    path: Path
    flush_interval_s: float = 0.5
    flush_max_rows: int = 512
    max_pending: int = 100_000
    retention_days: float | None = 30.0
    max_rows: int | None = None
    retention_every_s: float = 60.0
    mirror: str | None = None
    mirror_interval_s: float = 60.0
    mirror_options: dict[str, Any] = field(default_factory=dict)


def read_requests(
    source: str | Path,
    since: float | None = None,
    limit: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[LoggedPrediction]:
    """Logged rows, oldest first, optionally only those at or after ``since`` (epoch seconds).

    ``source`` is the SQLite file, or a mirror: a ``gs://bucket/prefix`` URL (any fsspec URL) or
    a local folder of the JSON-lines parts written by ``log_mirror``.
    """
    text = str(source)
    if "://" in text or Path(text).is_dir():
        rows = read_mirror(text, storage_options or {})
        if since is not None:
            rows = [row for row in rows if row.ts >= since]
        return rows[-limit:] if limit is not None else rows
    conn = connect(source, readonly=True)
    try:
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM requests"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE ts >= ?"
            args.append(since)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = conn.execute(sql, args).fetchall()
    finally:
        conn.close()
    return [row_to_prediction(row) for row in reversed(rows)]


class RequestLog:
    """Append predictions from any thread; a daemon thread writes them in batches."""

    def __init__(self, config: RequestLogConfig) -> None:
        self.config = config
        self._queue: queue.Queue[LoggedPrediction] = queue.Queue(maxsize=config.max_pending)
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0
        self.mirrored = 0
        self.errors = 0
        self._conn = connect(config.path)
        self._db_lock = threading.Lock()
        self.apply_retention()  # clean up at start; then every retention_every_s
        self._last_retention = time.monotonic()
        self._writer = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._mirror_thread: threading.Thread | None = None
        self._writer.start()
        if config.mirror:
            self._mirror_thread = threading.Thread(
                target=self._mirror_loop, name="request-log-mirror", daemon=True
            )
            self._mirror_thread.start()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return self._queue.qsize()

    def append(self, rows: Sequence[LoggedPrediction]) -> int:
        """Queue rows for writing; never blocks. Returns how many were dropped (queue full)."""
        dropped = 0
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                dropped += 1
        self.dropped += dropped
        return dropped

    def _drain(self) -> list[LoggedPrediction]:
        batch: list[LoggedPrediction] = []
        while len(batch) < self.config.flush_max_rows:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[LoggedPrediction]) -> None:
        sql = (
            f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        try:
            with self._db_lock, self._conn:
                self._conn.executemany(sql, [row.as_row() for row in batch])
            self.written += len(batch)
        except sqlite3.Error:
            self.errors += 1
            log.exception(
                "request log: could not write %d rows to %s", len(batch), self.config.path
            )

    def flush(self) -> None:
        """Write everything queued so far (the writer thread does this every flush interval)."""
        while batch := self._drain():
            self._write(batch)

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.config.flush_interval_s)
            self.flush()
            now = time.monotonic()
            if now - self._last_retention >= self.config.retention_every_s:
                self._last_retention = now
                self.apply_retention()
        self.flush()

    def apply_retention(self, now: float | None = None) -> int:
        """Delete rows older than ``retention_days`` and beyond ``max_rows``; returns the count.

        With a mirror, only rows already uploaded to it are ever deleted.
        """
        deleted = 0
        try:
            with self._db_lock, self._conn:
                keep_above = "AND id <= ?" if self.config.mirror else ""
                guard = (mirrored_up_to(self._conn, self.config.mirror),) if keep_above else ()
                if self.config.retention_days is not None:
                    cutoff = (now or time.time()) - self.config.retention_days * 86400
                    deleted += self._conn.execute(
                        f"DELETE FROM requests WHERE ts < ? {keep_above}", (cutoff, *guard)
                    ).rowcount
                if self.config.max_rows is not None:
                    deleted += self._conn.execute(
                        "DELETE FROM requests WHERE id <= "
                        f"(SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?) {keep_above}",
                        (self.config.max_rows, *guard),
                    ).rowcount
        except sqlite3.Error:
            self.errors += 1
            log.exception("request log: retention failed on %s", self.config.path)
        return deleted

    def _mirror_loop(self) -> None:
        while not self._stop.wait(self.config.mirror_interval_s):
            self.mirror_now()

    def mirror_now(self) -> int:
        """Copy rows not yet mirrored to ``config.mirror`` as one JSON-lines part; returns rows."""
        url = self.config.mirror
        if not url:
            return 0
        try:
            count = mirror_new_rows(self.config.path, url, self.config.mirror_options)
        except Exception:  # a flaky remote must never take the server down
            self.errors += 1
            log.exception("request log: mirroring to %s failed; will retry", url)
            return 0
        self.mirrored += count
        return count

    def close(self) -> None:
        """Stop the threads, write what is queued, mirror the rest once, close the database."""
        self._stop.set()
        self._writer.join(timeout=30)
        if self._mirror_thread is not None:
            self._mirror_thread.join(timeout=30)
            self.mirror_now()
        self._conn.close()
