"""Batch prediction over big files on one machine: chunked, constant memory, resumable.

``sentiment predict RUN --file IN --output OUT`` calls :func:`predict_file`. The input is read
row by row (:mod:`sentiment_hf.data.streamio`) and cut into chunks of ``chunk_size`` rows; each
finished chunk is written as one part into the sidecar folder ``OUT.parts/`` beside a
``state.json`` that records the job's key: the input (path, size, mtime), the run's
``model_version`` and decision policy, and the options. Rerunning the same command reuses the
finished parts and scores the rest; a different key is refused unless ``overwrite``. Once every
part exists the parts are merged in chunk order into ``OUT`` (atomically) and the folder is
removed, so an interrupted and resumed job writes the same bytes as an uninterrupted one.

Past one process, :mod:`sentiment_hf.inference.ray_engine` scores the same rows on Ray Data.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_hf.data.streamio import OutputFormat, TextReader, is_url
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import read_json, write_atomic, write_json
from sentiment_hf.longtext import LongTextCounts
from sentiment_hf.rundir import ONNX_WEIGHTS_KEY, RunDir, open_run

if TYPE_CHECKING:
    from sentiment_hf.inference.predictor import Predictor

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 4096
PARTS_SUFFIX = ".parts"
STATE_FILE = "state.json"
PART_FILE = "part-{index:06d}{suffix}"
#: Test hook, not a feature: after this process has written N finished chunk parts it blocks
#: for good, so a test can kill the job at a known point (exactly N parts on disk).
PAUSE_ENV = "SENTIMENT_HF_PAUSE_AFTER_CHUNKS"


@dataclass
class BatchResult:
    """What one process did: chunks scored here, chunks reused from an earlier attempt."""

    output: Path | str  # the merged file (a local path or an fsspec URL)
    backend: str
    rows: int = 0  # texts scored by this process
    blank: int = 0  # blank rows passed over (their index is kept, no output row)
    chunks: int = 0  # chunks in the whole input
    scored_chunks: int = 0
    reused_chunks: int = 0
    #: what the run's long-text rule did to the texts scored here (``capped``: read only up to
    #: their first ``max_windows`` windows)
    long_text: LongTextCounts = dataclasses.field(default_factory=LongTextCounts)
    seconds: float = 0.0  # the whole call: model load, reading, scoring, merging
    scoring_seconds: float = 0.0  # reading, scoring and merging, after the model loaded

    @property
    def rows_per_s(self) -> float:
        """Texts scored here per second of :attr:`scoring_seconds`."""
        return self.rows / self.scoring_seconds if self.scoring_seconds else 0.0


def stamped_backend(run: RunDir) -> tuple[str, str]:
    """The fastest CPU backend the run can use and why: ``onnx-int8`` when ``model.int8.onnx``
    is stamped with the run's weights, else ``onnx``, else ``torch``."""
    import onnx

    for name, quantized in (("onnx-int8", True), ("onnx", False)):
        path = run.onnx_path(quantized)
        if path.is_file():
            meta = onnx.load(str(path), load_external_data=False).metadata_props
            if {p.key: p.value for p in meta}.get(ONNX_WEIGHTS_KEY) == run.weights_sha256:
                return name, f"{path.name} is stamped with the run's weights"
    return "torch", "no current ONNX export (`sentiment export RUN --quantize int8` is faster)"


def default_backend(run: RunDir) -> tuple[str, str]:
    """torch on a CUDA device when there is one, else :func:`stamped_backend` (torch is only
    imported to ask when an NVIDIA driver is present: the ONNX path starts faster without it)."""
    if Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists():
        import torch

        if torch.cuda.is_available():
            return "torch", "a CUDA device is available"
    return stamped_backend(run)


def parts_dir(output: Path) -> Path:
    """The sidecar folder of finished chunks beside ``output``."""
    return output.with_name(output.name + PARTS_SUFFIX)


def job_key(run: RunDir, reader: TextReader, options: dict[str, Any]) -> dict[str, Any]:
    """What must match for finished parts to be reused."""
    stat = reader.path.stat()
    return {
        "input": {
            "path": str(reader.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        },
        "model_version": run.model_version,
        "policy": run.policy.to_dict(),
        "long_text": dataclasses.asdict(run.long_text),
        "options": options,
    }


def _key_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("input") != new["input"]:
        return "the input file changed or is another file"
    if old.get("model_version") != new["model_version"]:
        return f"model {old.get('model_version')} → {new['model_version']}"
    if old.get("policy") != new["policy"] or old.get("long_text") != new["long_text"]:
        return "the run's decision policy or long-text policy changed"
    old_opts = old.get("options", {})
    diffs = [
        f"{k} {old_opts.get(k)!r} → {v!r}"
        for k, v in new["options"].items()
        if old_opts.get(k) != v
    ]
    return "options differ: " + ", ".join(diffs)


def _prepare(output: Path, key: dict[str, Any], overwrite: bool) -> Path:
    """Validate or (re)create the sidecar folder for ``key``."""
    parts = parts_dir(output)
    state = parts / STATE_FILE
    if output.exists() and not parts.is_dir() and not overwrite:
        raise SentimentError(
            f"{output} already exists; pass --overwrite to replace it or choose another --output"
        )
    old = read_json(state) if state.is_file() else None
    if old is not None and old != key and any(parts.glob("part-*")):
        if not overwrite:
            raise SentimentError(
                f"{parts} holds parts of another job ({_key_difference(old, key)}); rerun the "
                "same command to resume it, or pass --overwrite to start over"
            )
        shutil.rmtree(parts)
    elif old is not None and old != key:  # nothing finished to lose: start over
        write_json(state, key)
    parts.mkdir(parents=True, exist_ok=True)
    if not state.is_file():
        write_json(state, key)
    return parts


def _chunks(reader: TextReader, size: int) -> Iterator[list[str | None]]:
    rows = iter(reader)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def progress_bar(total: int, enabled: bool | None) -> Any:
    """A rows bar with rate and ETA on stderr (``enabled`` None: when stderr is a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=" rows",
        unit_scale=True,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=(not sys.stderr.isatty()) if enabled is None else not enabled,
    )


def open_input(
    run: RunDir,
    path: str | Path,
    text_column: str | None = None,
    encoding: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> TextReader:
    """A reader of the texts of ``path`` (a local file or an fsspec URL), ``text_column``
    defaulting to the run's ``data.text_column``: how ``predict --file`` reads a file, with or
    without ``--output``, on one machine or on Ray."""
    from sentiment_hf.config.recipe import DataConfig

    column = text_column or (run.recipe.data if run.recipe else DataConfig()).text_column
    return TextReader(path, column, encoding, storage_options)


def predict_file(
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
    announce: Callable[[str], None] = log.info,
) -> BatchResult:
    """Score every text of ``input_path`` into ``output`` in input order (see the module doc).

    ``text_column`` defaults to the run's ``data.text_column``; ``backend`` to
    :func:`default_backend`. ``progress`` shows a bar with
    rate and ETA (None: when stderr is a terminal). ``announce`` gets the plan line first.
    """
    started = time.perf_counter()
    run = open_run(model_dir)
    if chunk_size < 1:
        raise SentimentError(f"--chunk-size must be >= 1, got {chunk_size}")
    if is_url(input_path) or is_url(output):
        raise SentimentError(
            "the one-machine path reads and writes local files; score fsspec URLs "
            "(gs://...) with --engine ray"
        )
    reader = open_input(run, input_path, text_column, encoding)
    output = Path(output)
    fmt = OutputFormat(output, run.labels, run.task.output_columns, include_text)
    reason = "asked for"
    if backend is None:
        backend, reason = default_backend(run)
    options = {"text_column": reader.text_column, "chunk_size": chunk_size, "backend": backend}
    options |= {"batch_size": batch_size, "include_text": include_text, "encoding": encoding}
    options["format"] = fmt.suffix
    from sentiment_hf.inference.predictor import Predictor

    predictor = Predictor(run, backend=backend, batch_size=batch_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    parts = _prepare(output, job_key(run, reader, options), overwrite)
    job = _Job(reader, fmt, output, parts, chunk_size)
    done = list(parts.glob(f"part-*{fmt.suffix}"))
    announce(
        f"backend: {backend} ({reason}); chunks of {chunk_size} rows; "
        f"{len(done)} finished chunk(s) in {parts} reused"
    )
    result = BatchResult(output=output, backend=backend)
    pause_after = int(os.environ.get(PAUSE_ENV) or 0)  # test hook (PAUSE_ENV)
    loaded = time.perf_counter()
    _score_chunks(job, predictor, result, progress, pause_after)
    if result.chunks == 0:
        raise SentimentError(f"--file {str(reader.path)!r} has no rows; give one text per row")
    _merge_parts(job, result.chunks)
    result.seconds = time.perf_counter() - started
    result.scoring_seconds = time.perf_counter() - loaded
    return result


@dataclass(frozen=True)
class _Job:
    """What the steps of one :func:`predict_file` call share once its sidecar folder is ready."""

    reader: TextReader
    fmt: OutputFormat
    output: Path
    parts: Path  # the sidecar folder (:func:`parts_dir`)
    chunk_size: int

    def part(self, index: int) -> Path:
        """The part file of chunk ``index``."""
        return self.parts / PART_FILE.format(index=index, suffix=self.fmt.suffix)


def _score_chunks(
    job: _Job, predictor: Predictor, result: BatchResult, progress: bool | None, pause_after: int
) -> None:
    """Stream the input in chunks; score the chunks that have no part yet."""
    total = job.reader.estimate_rows()
    with progress_bar(total, progress) as bar:
        for index, chunk in enumerate(_chunks(job.reader, job.chunk_size)):
            result.chunks = index + 1
            part = job.part(index)
            if part.is_file():
                result.reused_chunks += 1
                bar.update(len(chunk))
                continue
            _score_chunk(job, predictor, index, chunk, result)
            bar.update(len(chunk))
            if result.scored_chunks == pause_after:
                threading.Event().wait()  # test hook: blocks until the test kills this process


def _score_chunk(
    job: _Job, predictor: Predictor, index: int, chunk: list[str | None], result: BatchResult
) -> None:
    """Score chunk ``index`` (blank rows keep their index, no output row) into its part file."""
    first = index * job.chunk_size
    rows = [(first + i, text) for i, text in enumerate(chunk) if text is not None]
    try:
        texts = [text for _, text in rows]
        preds = predictor.predict(texts, result.long_text, strict=False) if rows else []
    except SentimentError as exc:
        raise SentimentError(
            f"chunk {index} (rows {first}-{first + len(chunk) - 1}): {exc}"
        ) from exc
    records = [job.fmt.record(row, p) for (row, _), p in zip(rows, preds, strict=True)]
    write_atomic(job.part(index), lambda tmp: job.fmt.write_part(tmp, records))
    result.rows += len(rows)
    result.blank += len(chunk) - len(rows)
    result.scored_chunks += 1


def _merge_parts(job: _Job, chunks: int) -> None:
    """Merge every chunk's part in order into the output; drop the sidecar folder."""
    all_parts = [job.part(i) for i in range(chunks)]
    write_atomic(job.output, lambda tmp: job.fmt.merge(all_parts, tmp))
    shutil.rmtree(job.parts)
