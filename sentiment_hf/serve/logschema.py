"""The request log's SQLite schema and row type, shared by the log's writer
(``serve/requestlog.py``), its mirror (``serve/mirror.py``) and every reader.

The database uses WAL so ``sentiment drift`` can read it while the server writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    probabilities TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    model_version TEXT NOT NULL,
    backend TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE TABLE IF NOT EXISTS mirror_state (
    url TEXT PRIMARY KEY, last_id INTEGER NOT NULL, pending_top INTEGER
);
"""
COLUMNS = (
    "ts",
    "text",
    "label",
    "score",
    "probabilities",
    "latency_ms",
    "model_version",
    "backend",
)


@dataclass
class LoggedPrediction:
    """One row of the request log."""

    ts: float
    text: str
    label: str
    score: float
    probabilities: dict[str, float]
    latency_ms: float
    model_version: str
    backend: str
    id: int | None = None

    def as_row(self) -> tuple[Any, ...]:
        return (
            self.ts,
            self.text,
            self.label,
            self.score,
            json.dumps(self.probabilities, sort_keys=True),
            self.latency_ms,
            self.model_version,
            self.backend,
        )


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the request database (WAL, busy timeout); ``readonly`` refuses a missing file."""
    path = Path(path)
    if readonly:
        if not path.is_file():
            raise SentimentError(
                f"request log {str(path)!r} not found; pass the --request-log file that "
                "`sentiment serve` wrote"
            )
        uri = f"file:{path.resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        _migrate(conn)
    try:
        conn.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SentimentError(f"{str(path)!r} is not a request log database ({exc})") from exc
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to :data:`SCHEMA`."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mirror_state)")}
    if "pending_top" not in columns:
        with conn:
            conn.execute("ALTER TABLE mirror_state ADD COLUMN pending_top INTEGER")


def row_to_prediction(row: Sequence[Any]) -> LoggedPrediction:
    """A ``SELECT id, {COLUMNS}`` row as a :class:`LoggedPrediction`."""
    rid, ts, text, label, score, probs, latency, version, backend = row
    return LoggedPrediction(
        ts, text, label, score, json.loads(probs), latency, version, backend, rid
    )
