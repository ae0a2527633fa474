"""The request log: batched background writes, retention, the bounded queue, the gs:// mirror."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from servers import gcs_emulator as start_gcs_emulator

from sentiment_hf.errors import SentimentError
from sentiment_hf.serve.requestlog import (
    LoggedPrediction,
    RequestLog,
    RequestLogConfig,
    read_requests,
)


def _row(text: str, ts: float | None = None, label: str = "pos") -> LoggedPrediction:
    probs = {"neg": 0.2, "pos": 0.8} if label == "pos" else {"neg": 0.7, "pos": 0.3}
    return LoggedPrediction(
        ts if ts is not None else time.time(),
        text,
        label,
        max(probs.values()),
        probs,
        3.5,
        "v1",
        "torch",
    )


def test_rows_written_in_batches_and_readable_after_close(tmp_path: Path) -> None:
    db = tmp_path / "log" / "requests.db"
    log = RequestLog(RequestLogConfig(path=db, flush_interval_s=60, flush_max_rows=100))
    log.append([_row(f"text {i}", label="pos" if i % 3 else "neg") for i in range(250)])
    assert log.pending == 250  # nothing written on the request path
    log.close()  # the writer drains the queue on shutdown
    rows = read_requests(db)
    assert [r.text for r in rows] == [f"text {i}" for i in range(250)]
    assert rows[0].label == "neg" and rows[1].label == "pos"
    assert rows[0].probabilities == {"neg": 0.7, "pos": 0.3}
    assert log.written == 250 and log.dropped == 0 and log.errors == 0
    assert read_requests(db, limit=5)[-1].text == "text 249"


def test_since_filters_by_time(tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    log = RequestLog(RequestLogConfig(path=db, retention_days=None))
    now = time.time()
    log.append([_row("old", ts=now - 7200), _row("new", ts=now - 60)])
    log.close()
    assert [r.text for r in read_requests(db, since=now - 3600)] == ["new"]


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    log = RequestLog(RequestLogConfig(path=db, flush_interval_s=60, max_pending=3))
    assert log.append([_row(str(i)) for i in range(5)]) == 2
    log.close()
    assert [r.text for r in read_requests(db)] == ["0", "1", "2"]
    assert log.dropped == 2


def test_retention_by_age_and_by_row_count(tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    now = time.time()
    log = RequestLog(
        RequestLogConfig(path=db, flush_interval_s=0.02, retention_days=1.0, max_rows=3)
    )
    log.append(
        [_row("ancient", ts=now - 3 * 86400)] + [_row(f"recent {i}", ts=now) for i in range(5)]
    )
    deadline = time.time() + 20
    while log.written < 6 and time.time() < deadline:
        time.sleep(0.02)
    assert log.apply_retention(now=now) == 3  # 1 too old, then 2 beyond max_rows
    log.close()
    assert [r.text for r in read_requests(db)] == ["recent 2", "recent 3", "recent 4"]


def test_reading_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match="not found"):
        read_requests(tmp_path / "missing.db")
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SentimentError, match="not a request log"):
        read_requests(foreign)


@pytest.fixture
def gcs_emulator():
    """gcp-storage-emulator on loopback (real GCS cannot be reached)."""
    with start_gcs_emulator() as endpoint:
        yield endpoint


def test_mirror_to_gs_on_the_emulator(tmp_path: Path, gcs_emulator: str) -> None:
    import gcsfs

    options = {"endpoint_url": gcs_emulator, "token": "anon"}
    url = "gs://sentiment-logs/requests/api-1"
    db = tmp_path / "requests.db"
    config = RequestLogConfig(
        path=db, flush_interval_s=0.02, mirror=url, mirror_interval_s=3600, mirror_options=options
    )
    log = RequestLog(config)
    log.append([_row(f"first {i}") for i in range(3)])
    deadline = time.time() + 20
    while log.written < 3 and time.time() < deadline:
        time.sleep(0.02)
    assert log.mirror_now() == 3
    assert log.mirror_now() == 0  # the watermark prevents duplicates
    log.append([_row("second")])
    log.close()  # final mirror on shutdown

    fs = gcsfs.GCSFileSystem(**options)
    parts = sorted(fs.ls("sentiment-logs/requests/api-1"))
    assert len(parts) == 2 and all(p.endswith(".jsonl") for p in parts)
    lines = [json.loads(line) for p in parts for line in fs.cat(p).decode().splitlines()]
    assert [row["text"] for row in lines] == ["first 0", "first 1", "first 2", "second"]
    assert lines[0]["probabilities"] == {"neg": 0.2, "pos": 0.8} and lines[0]["id"] == 1
    assert log.mirrored == 4 and log.errors == 0
    # `sentiment drift --requests gs://...` reads the mirror back.
    back = read_requests(url, storage_options=options)
    assert [r.text for r in back] == [r.text for r in read_requests(db)]
    assert [r.text for r in read_requests(url, limit=2, storage_options=options)] == [
        "first 2",
        "second",
    ]


def test_mirror_failure_keeps_rows_for_the_next_try(tmp_path: Path) -> None:
    # The mirror target is unwritable (a file stands where the folder should be): the upload
    # fails, the server keeps going, and the next try after the fix uploads the same rows.
    target = tmp_path / "mirror"
    target.write_text("in the way")
    db = tmp_path / "requests.db"
    log = RequestLog(
        RequestLogConfig(
            path=db, flush_interval_s=0.02, mirror=f"file://{target}/api", mirror_interval_s=3600
        )
    )
    log.append([_row("kept 1"), _row("kept 2")])
    deadline = time.time() + 20
    while log.written < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert log.mirror_now() == 0 and log.errors == 1
    target.unlink()
    assert log.mirror_now() == 2
    log.close()
    (part,) = sorted((target / "api").iterdir())
    assert [json.loads(line)["text"] for line in part.read_text().splitlines()] == [
        "kept 1",
        "kept 2",
    ]


def _wait_written(log: RequestLog, n: int) -> None:
    deadline = time.time() + 20
    while log.written < n and time.time() < deadline:
        time.sleep(0.02)
    assert log.written == n


def test_retention_never_deletes_rows_not_yet_mirrored(tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    now = time.time()
    log = RequestLog(
        RequestLogConfig(
            path=db,
            flush_interval_s=0.02,
            retention_days=1.0,
            max_rows=2,
            retention_every_s=3600,
            mirror=f"file://{tmp_path}/mirror",
            mirror_interval_s=3600,
        )
    )
    log.append([_row("ancient", ts=now - 3 * 86400)] + [_row(f"a{i}", ts=now) for i in range(4)])
    _wait_written(log, 5)
    assert log.apply_retention(now=now) == 0  # too old / too many, but not uploaded yet
    assert log.mirror_now() == 5
    assert log.apply_retention(now=now) == 3  # the ancient row, then 2 beyond max_rows
    log.append([_row(f"b{i}", ts=now) for i in range(3)])
    _wait_written(log, 8)
    # max_rows=2 asks for 3 deletions; only the 2 mirrored rows may go, never b0..b2.
    assert log.apply_retention(now=now) == 2
    assert [r.text for r in read_requests(db)] == ["b0", "b1", "b2"]
    log.close()  # the final mirror uploads b0..b2
    mirrored = [r.text for r in read_requests(tmp_path / "mirror")]
    assert mirrored == ["ancient", "a0", "a1", "a2", "a3", "b0", "b1", "b2"]


def test_an_upload_left_uncommitted_by_a_crash_is_redone_not_duplicated(tmp_path: Path) -> None:
    import sqlite3

    db, mirror = tmp_path / "requests.db", tmp_path / "mirror"
    config = RequestLogConfig(
        path=db, flush_interval_s=0.02, mirror=f"file://{mirror}", mirror_interval_s=3600
    )
    log = RequestLog(config)
    log.append([_row(f"first {i}") for i in range(3)])
    _wait_written(log, 3)
    assert log.mirror_now() == 3
    # What a kill between the upload and its commit leaves: the range claimed, not confirmed.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mirror_state SET last_id = 0, pending_top = 3")
    log.append([_row("later")])
    _wait_written(log, 4)
    assert log.mirror_now() == 3  # the pending range again, to the same part name
    assert log.mirror_now() == 1
    log.close()
    assert len(list(mirror.iterdir())) == 2
    assert [r.text for r in read_requests(mirror)] == ["first 0", "first 1", "first 2", "later"]


def test_two_logs_on_one_database_mirror_each_row_once(tmp_path: Path) -> None:
    # Two server workers share one SQLite file and one mirror URL; both mirror every 10 ms.
    db, mirror = tmp_path / "requests.db", tmp_path / "mirror"
    config = RequestLogConfig(
        path=db, flush_interval_s=0.01, mirror=f"file://{mirror}", mirror_interval_s=0.01
    )
    logs = [RequestLog(config), RequestLog(config)]
    for i in range(40):
        logs[i % 2].append([_row(f"w{i % 2} r{i}")])
        time.sleep(0.005)
    for log in logs:
        log.close()
    texts = [r.text for r in read_requests(mirror)]
    assert sorted(texts) == sorted(f"w{i % 2} r{i}" for i in range(40))
    ids = [r.id for r in read_requests(mirror)]
    assert len(ids) == len(set(ids)) == 40
    assert sum(log.mirrored for log in logs) == 40 and logs[0].errors == logs[1].errors == 0


def test_a_database_from_before_pending_ranges_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE mirror_state (url TEXT PRIMARY KEY, last_id INTEGER NOT NULL);"
            "INSERT INTO mirror_state VALUES ('file:///x', 7);"
        )
    log = RequestLog(RequestLogConfig(path=db, mirror=f"file://{tmp_path}/m"))
    log.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT url, last_id, pending_top FROM mirror_state").fetchall() == [
            ("file:///x", 7, None)
        ]
