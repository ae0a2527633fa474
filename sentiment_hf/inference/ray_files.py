"""``sentiment predict RUN --file IN --output OUT --engine ray``: a file scored on Ray Data.

The input is read by the same :class:`~sentiment_hf.data.streamio.TextReader` as on one machine
(one read task streaming the file in chunks of ``chunk_size`` rows, each row keeping its
position), each chunk is scored whole by an actor of
:func:`~sentiment_hf.inference.ray_engine.scorer_pool`, and the driver writes the answers, in
input order, into one file with the columns of the one-machine path
(:func:`~sentiment_hf.inference.batch.predict_file`): the same bytes for the same file and
options. Input and output may be fsspec URLs (``gs://bucket/reviews.csv``).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from sentiment_hf.data.streamio import OutputFormat, TextReader, is_url
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_atomic
from sentiment_hf.inference.batch import (
    DEFAULT_CHUNK_SIZE,
    BatchResult,
    default_backend,
    open_input,
    progress_bar,
)
from sentiment_hf.inference.ray_engine import (
    Scorer,
    connect,
    pool_size,
    prediction_from_row,
    scorer_pool,
    unwrap_error,
)
from sentiment_hf.rundir import RunDir, open_run

log = logging.getLogger(__name__)

#: Ray's block size while a file is scored: a block holds at most one chunk of the input
#: (Ray's default, 128 MiB, would hold the actors back until that much of the file is read).
BLOCK_BYTES = 1 << 20


class _ChunkScorer(Scorer):
    """An actor of the path form: each input row is one chunk of the file (``first``, the
    position of its first row, and ``texts``), scored whole, as the one-machine path scores a
    chunk, and given back as one output row per text (``index``, ``text``, the answer)."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        tables = []
        for first, texts in zip(
            batch.column("first").to_pylist(), batch.column("texts").to_pylist(), strict=True
        ):
            index = pa.array(range(first, first + len(texts)), pa.int64())
            rows = pa.table({"index": index, "text": pa.array(texts, pa.string())})
            tables.append(super().__call__(rows))
        return pa.concat_tables(tables)


class TextFileDatasource(Datasource):
    """The chunks of one input file, one row per chunk of ``chunk_size`` rows: ``first`` (the
    position of its first row, blank rows counted) and ``texts`` (null for a blank row). One
    task reads the file with its :class:`TextReader` (format, column, encoding, errors) and
    streams the chunks out. A chunk is one row so that Ray, which joins and splits blocks by
    size, can never split it: every chunk is scored whole, exactly as on one machine (int8
    answers depend on the batch a text is scored with)."""

    def __init__(self, reader: TextReader, chunk_size: int) -> None:
        self.location = reader.location
        self.text_column = reader.text_column
        self.encoding = reader.encoding
        self.storage_options = reader.storage_options
        self.size = reader.size()
        self.chunk_size = chunk_size

    def estimate_inmemory_data_size(self) -> int | None:
        return self.size

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        def read() -> Iterator[pa.Table]:
            reader = TextReader(
                self.location, self.text_column, self.encoding, self.storage_options
            )
            first, chunk = 0, []
            for text in reader:
                chunk.append(text)
                if len(chunk) == self.chunk_size:
                    yield _chunk_row(first, chunk)
                    first, chunk = first + len(chunk), []
            if chunk:
                yield _chunk_row(first, chunk)

        meta = BlockMetadata(
            num_rows=None, size_bytes=self.size, exec_stats=None, input_files=(self.location,)
        )
        return [ReadTask(read, meta)]


def _chunk_row(first: int, texts: list[str | None]) -> pa.Table:
    return pa.table(
        {"first": pa.array([first], pa.int64()), "texts": pa.array([texts], pa.list_(pa.string()))}
    )


def predict_on_ray(
    model_dir: str | Path | RunDir,
    input_path: str | Path,
    output: str | Path,
    *,
    text_column: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend: str | None = None,
    batch_size: int = 32,
    include_text: bool = True,
    encoding: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1,
    storage_options: dict[str, Any] | None = None,
    announce: Callable[[str], None] = log.info,
) -> BatchResult:
    """Score every text of ``input_path`` into ``output`` on Ray (see the module doc): the
    rows, columns and order of :func:`~sentiment_hf.inference.batch.predict_file`. Paths may
    be fsspec URLs (``storage_options`` go to fsspec); ``address`` as in :func:`connect`."""
    started = time.perf_counter()
    run = open_run(model_dir)
    if chunk_size < 1:
        raise SentimentError(f"--chunk-size must be >= 1, got {chunk_size}")
    reader = open_input(run, input_path, text_column, encoding, storage_options)
    target = _Target(str(output), storage_options or {})
    fmt = OutputFormat(Path(target.name), run.labels, run.task.output_columns, include_text)
    if target.exists() and not overwrite:
        raise SentimentError(
            f"{output} already exists; pass --overwrite to replace it or choose another --output"
        )
    reason = "asked for"
    if backend is None:
        backend, reason = default_backend(run)
    started_here = connect(address)
    try:
        with (
            _in_order(),
            tempfile.TemporaryDirectory(prefix="sentiment-ray-") as tmp,
        ):
            cpus = ray.cluster_resources().get("CPU", 1)
            actors = pool_size(actors, cpus_per_actor)
            announce(
                f"backend: {backend} ({reason}); Ray: {actors} actor(s) x {cpus_per_actor:g} "
                f"CPU on {cpus:g} CPU(s); blocks of {chunk_size} rows"
            )
            chunks = ray.data.read_datasource(
                TextFileDatasource(reader, chunk_size), num_cpus=0, override_num_blocks=1
            )
            scored = scorer_pool(
                run, chunks, _ChunkScorer, "text", backend, batch_size, actors, cpus_per_actor, 1
            )
            result = BatchResult(output=output, backend=backend)
            loaded = time.perf_counter()
            parts = _write_parts(
                scored, fmt, run.labels, Path(tmp), result, reader, chunk_size, progress
            )
            target.write(lambda path: fmt.merge(parts, path))
    except Exception as exc:
        error = unwrap_error(exc)
        if error is exc:
            raise
        raise error from None
    finally:
        if started_here:
            ray.shutdown()
    if result.chunks == 0:
        raise SentimentError(f"--file {reader.location!r} has no rows; give one text per row")
    result.seconds = time.perf_counter() - started
    result.scoring_seconds = time.perf_counter() - loaded
    return result


@contextmanager
def _in_order() -> Iterator[None]:
    """Ray Data keeps the blocks' order and logs nothing of its own (the job has one progress
    bar, and a failed task's error reaches the caller as one exception) while this is open."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    options = context.execution_options
    saved = options.preserve_order, context.enable_progress_bars, context.target_max_block_size
    level = logger.level
    options.preserve_order, context.enable_progress_bars = True, False
    context.target_max_block_size = BLOCK_BYTES
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        options.preserve_order, context.enable_progress_bars, context.target_max_block_size = saved
        logger.setLevel(level)


def _write_parts(
    scored: ray.data.Dataset,
    fmt: OutputFormat,
    labels: list[str],
    folder: Path,
    result: BatchResult,
    reader: TextReader,
    chunk_size: int,
    progress: bool | None,
) -> list[Path]:
    """Stream the scored rows in order into one part file per chunk; count rows and blanks."""
    parts = []
    shown = progress if progress is not None else sys.stderr.isatty()
    with progress_bar(reader.estimate_rows() if shown else 0, shown) as bar:
        for batch in scored.iter_batches(batch_size=chunk_size, batch_format="pyarrow"):
            rows = batch.to_pylist()
            records = [
                fmt.record(row["index"], prediction_from_row(row, labels))
                for row in rows
                if row["text"] is not None
            ]
            part = folder / f"part-{len(parts):06d}{fmt.suffix}"
            fmt.write_part(part, records)
            parts.append(part)
            result.rows += len(records)
            result.blank += len(rows) - len(records)
            bar.update(len(rows))
    result.chunks = result.scored_chunks = len(parts)
    return parts


class _Target:
    """Where the merged output goes: a local path (written atomically) or an fsspec URL
    (merged locally, then uploaded)."""

    def __init__(self, location: str, storage_options: dict[str, Any]) -> None:
        self.location = location
        self.fs = None
        if is_url(location):
            import fsspec

            self.fs, self.fs_path = fsspec.core.url_to_fs(location, **storage_options)
        self.name = Path(self.fs_path if self.fs else location).name

    def exists(self) -> bool:
        return bool(self.fs.exists(self.fs_path)) if self.fs else Path(self.location).exists()

    def write(self, fill: Callable[[Path], None]) -> None:
        if self.fs is None:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(self.location), fill)
            return
        with tempfile.TemporaryDirectory(prefix="sentiment-out-") as tmp:
            local = Path(tmp) / self.name
            fill(local)
            self.fs.put_file(str(local), self.fs_path)
