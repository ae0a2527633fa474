"""Streaming file formats for batch prediction: read texts row by row, write result parts, merge.

Inputs (:class:`TextReader`): ``.txt`` (one text per line), ``.csv`` / ``.tsv`` and ``.jsonl``
(a named text column or field), ``.parquet`` (pyarrow ``iter_batches``); a local file or an
fsspec URL (``gs://bucket/reviews.csv``). Nothing holds a whole file: rows are yielded one at a
time and every row keeps its position, ``None`` standing for a blank text. Outputs
(:class:`OutputFormat`): ``.jsonl``, ``.csv``, ``.parquet``, written as one part per chunk and
merged into the final file by streaming the parts in chunk order.

Every problem becomes one :class:`SentimentError` naming the file, the row and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from sentiment_hf.errors import SentimentError

INPUT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
#: Largest CSV cell accepted (bytes); longer texts are refused by the predictor's own cap.
CSV_FIELD_LIMIT = 1 << 24
_BLOCK = 1 << 20
#: A text to classify holds a character outside ECMAScript's whitespace set. Written out, so
#: the API's JSON-schema pattern, the server's check and the CLI's (Python ``re``) agree exactly.
NON_BLANK = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
BLANK_TEXT = "empty or whitespace-only; send at least one non-space character"
_NON_BLANK = re.compile(NON_BLANK)


def prob_column(label: str) -> str:
    """The flat column holding ``label``'s probability (CSV, parquet, Ray Datasets)."""
    return f"prob_{label}"


def is_url(location: str | Path) -> bool:
    """True for an fsspec URL such as ``gs://bucket/x.csv`` (not for a local path)."""
    return "://" in str(location)


def is_blank(text: str) -> bool:
    """True when ``text`` has nothing to classify (only whitespace, or nothing)."""
    return _NON_BLANK.search(text) is None


def _suffix(path: Path, allowed: Sequence[str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise SentimentError(
            f"{what} {str(path)!r} has an unsupported type {suffix or '(none)'!r}; "
            f"name it {', '.join(allowed[:-1])} or {allowed[-1]}"
        )
    return suffix


def _text(value: Any, where: str, column: str) -> str | None:
    """A cell as a text: ``None`` for missing or blank, an error for a non-string value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SentimentError(
            f"{where}: {column!r} holds {type(value).__name__} {str(value)[:40]!r}, not a text; "
            "choose the text column with --text-column"
        )
    return None if is_blank(value) else value


class TextReader:
    """The texts of one input file in row order, ``None`` for a blank or missing text.

    The file's type, header and text column are checked when the reader is made (before any
    model loads); iterating reads the file lazily and can start again from the top.
    """

    def __init__(
        self,
        path: Path | str,
        text_column: str = "text",
        encoding: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ):
        #: a local file, or an fsspec URL (``gs://bucket/reviews.csv``; ``storage_options``
        #: go to fsspec) read through its file system
        self.storage_options = dict(storage_options or {})
        self._fs = None
        self.path = Path(path)
        if is_url(path):
            import fsspec

            self._fs, self._fs_path = fsspec.core.url_to_fs(str(path), **self.storage_options)
            self.path = Path(self._fs_path)
        self.location = str(path) if self._fs else str(self.path)
        self.suffix = _suffix(self.path, INPUT_SUFFIXES, "--file")
        if not self._is_file():
            raise SentimentError(f"--file {self.location!r} not found")
        self.text_column = text_column
        try:
            "".encode(encoding or "utf-8")
        except LookupError as exc:
            raise SentimentError(
                f"--encoding {encoding!r} is not a known codec; use e.g. utf-8, cp1252, latin-1"
            ) from exc
        if self.size() == 0:
            raise SentimentError(f"--file {self.location!r} is empty; it needs one row per text")
        # not given: the data readers' rule (UTF-8, a BOM dropped, else cp1252 with a warning)
        if encoding is None and self.suffix != ".parquet":
            from sentiment_hf.data.readers import (
                stream_encoding,  # imports datasets: not at CLI start
            )

            encoding = stream_encoding(self.location, self._open_binary)
        self.encoding = encoding or "utf-8-sig"
        self.encoding_name = self.encoding.removesuffix("-sig")
        if self.suffix in (".csv", ".tsv"):
            with self._open_text() as handle:
                self._column_index(next(self._csv(handle), []))
        elif self.suffix == ".parquet":
            self._parquet()

    # ------------------------------------------------------------------ helpers
    def _is_file(self) -> bool:
        return self.path.is_file() if self._fs is None else bool(self._fs.isfile(self._fs_path))

    def size(self) -> int:
        """The file's size in bytes."""
        return self.path.stat().st_size if self._fs is None else int(self._fs.size(self._fs_path))

    def _open_binary(self) -> BinaryIO:
        return open(self.path, "rb") if self._fs is None else self._fs.open(self._fs_path, "rb")

    def _decode(self, raw: bytes, line: int) -> str:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise SentimentError(
                f"{self.location!r} line {line} is not valid {self.encoding_name} (byte "
                f"0x{raw[exc.start]:02x}); pass --encoding with the file's encoding, e.g. cp1252"
            ) from exc

    def _open_text(self) -> Any:
        return io.TextIOWrapper(self._open_binary(), encoding=self.encoding, newline="")

    def _csv(self, handle: Any) -> Iterator[list[str]]:
        csv.field_size_limit(CSV_FIELD_LIMIT)
        reader = csv.reader(handle, delimiter="\t" if self.suffix == ".tsv" else ",")
        try:
            yield from reader
        except csv.Error as exc:
            raise SentimentError(
                f"could not parse {self.location!r} line {reader.line_num}: {exc}; put fields "
                "that hold the separator or a newline in double quotes"
            ) from exc
        except UnicodeDecodeError as exc:
            raise SentimentError(
                f"{self.location!r} near line {reader.line_num + 1} is not valid "
                f"{self.encoding_name}; pass --encoding with the file's encoding, e.g. cp1252"
            ) from exc

    def _column_index(self, header: list[str]) -> int:
        names = [name.strip() for name in header]
        if self.text_column not in names:
            raise SentimentError(
                f"{self.location!r} has no column {self.text_column!r} (columns: "
                f"{', '.join(names) or 'none'}); choose one with --text-column"
            )
        return names.index(self.text_column)

    def _parquet(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self._open_binary())
        except (pa.ArrowException, OSError) as exc:
            raise SentimentError(
                f"could not read {self.location!r} as parquet: {exc}".splitlines()[0]
            ) from exc
        names = parquet.schema_arrow.names
        if self.text_column not in names:
            raise SentimentError(
                f"{self.location!r} has no column {self.text_column!r} (columns: "
                f"{', '.join(names)}); choose one with --text-column"
            )
        return parquet

    # ------------------------------------------------------------------ reading
    def estimate_rows(self) -> int:
        """Rows in the file, cheaply: parquet metadata, else a count of newlines (CSV cells
        holding newlines make it an over-estimate)."""
        if self.suffix == ".parquet":
            return int(self._parquet().metadata.num_rows)
        lines, last = 0, b"\n"
        with self._open_binary() as handle:
            while block := handle.read(_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"
        return max(0, lines - (self.suffix in (".csv", ".tsv")))

    def __iter__(self) -> Iterator[str | None]:
        if self.suffix == ".txt":
            return self._lines()
        if self.suffix == ".jsonl":
            return self._jsonl()
        if self.suffix == ".parquet":
            return self._parquet_rows()
        return self._delimited()

    def _raw_lines(self) -> Iterator[tuple[int, str]]:
        with self._open_binary() as handle:  # split on "\n" only; a "\r" before it is dropped
            for number, raw in enumerate(handle, start=1):
                yield number, self._decode(raw.rstrip(b"\n").rstrip(b"\r"), number)

    def _lines(self) -> Iterator[str | None]:
        for number, line in self._raw_lines():
            text = line.removeprefix("\ufeff") if number == 1 else line
            yield None if is_blank(text) else text

    def _jsonl(self) -> Iterator[str | None]:
        field = self.text_column
        for number, line in self._raw_lines():
            if is_blank(line):
                yield None
                continue
            where = f"{self.location!r} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SentimentError(f"{where} is not valid JSON ({exc.msg}); fix it") from exc
            if not isinstance(record, dict):
                raise SentimentError(f"{where} is not a JSON object; write one object per line")
            if field not in record:
                raise SentimentError(
                    f"{where} has no field {field!r} (fields: {', '.join(record) or 'none'}); "
                    "choose one with --text-column"
                )
            yield _text(record[field], where, field)

    def _delimited(self) -> Iterator[str | None]:
        with self._open_text() as handle:
            rows = self._csv(handle)
            column = self._column_index(next(rows))
            for row in rows:
                text = row[column] if column < len(row) else ""
                yield None if is_blank(text) else text

    def _parquet_rows(self) -> Iterator[str | None]:
        parquet = self._parquet()
        row = 0
        for batch in parquet.iter_batches(batch_size=4096, columns=[self.text_column]):
            for value in batch.column(0).to_pylist():
                yield _text(value, f"{self.location!r} row {row}", self.text_column)
                row += 1


class OutputFormat:
    """Result rows as ``.jsonl`` (nested probabilities, like ``predict --json``), ``.csv`` or
    ``.parquet`` (flat ``prob_<label>`` columns; multi-label ``labels`` as a list, in CSV a JSON
    list). Columns: index, text (unless left out), label, labels (multi-label runs), score,
    abstained (single-label runs), probabilities: ``results`` names the run's task's columns
    (:attr:`~sentiment_hf.tasks.task.Task.output_columns`)."""

    def __init__(
        self,
        path: Path,
        labels: Sequence[str],
        results: Sequence[str],
        include_text: bool = True,
    ) -> None:
        self.suffix = _suffix(Path(path), OUTPUT_SUFFIXES, "--output")
        self.labels = list(labels)
        self.columns = ["index", *(["text"] if include_text else []), *results]
        self.prob_columns = [prob_column(name) for name in self.labels]

    def record(self, index: int, pred: Any) -> dict[str, Any]:
        """One row: the columns of this format from a
        :class:`~sentiment_hf.inference.predictor.Prediction`."""
        values = {**pred.to_dict(), "index": index}
        row = {name: values[name] for name in self.columns}
        if self.suffix == ".jsonl":
            row["probabilities"] = values["probabilities"]
        else:
            for name, column in zip(self.labels, self.prob_columns, strict=True):
                row[column] = values["probabilities"][name]
        return row

    def _schema(self) -> Any:
        import pyarrow as pa

        types = {"index": pa.int64(), "text": pa.string(), "label": pa.string()}
        types |= {"labels": pa.list_(pa.string()), "score": pa.float64()}
        types["abstained"] = pa.bool_()
        fields = [(name, types[name]) for name in self.columns]
        return pa.schema(fields + [(name, pa.float64()) for name in self.prob_columns])

    def write_part(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """Write one chunk's ``rows`` to ``path`` (CSV parts have no header)."""
        if self.suffix == ".jsonl":
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.suffix == ".csv":
            with open(path, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                for row in rows:
                    cells = dict(row)
                    if "labels" in cells:
                        cells["labels"] = json.dumps(cells["labels"], ensure_ascii=False)
                    writer.writerow([_cell(cells[c]) for c in (*self.columns, *self.prob_columns)])
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows, schema=self._schema()), path)

    def merge(self, parts: Sequence[Path], out: Path) -> None:
        """Concatenate ``parts`` in order into ``out``: byte streams for JSONL/CSV (one header
        first), one parquet row group per part."""
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            with pq.ParquetWriter(out, self._schema()) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part, schema=self._schema()))
            return
        with open(out, "wb") as target:
            if self.suffix == ".csv":
                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(self.columns + self.prob_columns)
                target.write(header.getvalue().encode())
            for part in parts:
                with open(part, "rb") as source:
                    while block := source.read(_BLOCK):
                        target.write(block)


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value
