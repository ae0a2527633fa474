"""Read one data file as people have it: CSV/TSV with a BOM, CRLF, quoted newlines, a
latin-1 / cp1252 encoding, empty cells; JSONL and parquet through ``datasets``.

Every problem becomes one :class:`SentimentError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from datasets import Dataset
from sentiment_hf.errors import SentimentError

log = logging.getLogger(__name__)

#: Delimited-text suffixes and their separators.
DELIMITED = {".csv": ",", ".tsv": "\t"}
FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}
#: Tried in order when ``data.encoding`` is not set: UTF-8 (a BOM is dropped), then Windows-1252.
#: Latin-1 decodes every byte, so it is the last resort for the 5 bytes cp1252 leaves undefined.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
_INTEGER = re.compile(r"[+-]?\d+")
_INTEGER_ARROW = r"^[+-]?\p{Nd}+$"


def decode(raw: bytes, path: Path, encoding: str | None = None) -> str:
    """``raw`` as text: ``encoding`` when given, else UTF-8 (BOM dropped) then cp1252/latin-1."""
    if encoding:
        try:
            text = raw.decode(encoding)
        except LookupError as exc:
            raise SentimentError(
                f"data.encoding {encoding!r} is not a known codec; use e.g. utf-8, cp1252, latin-1"
            ) from exc
        except UnicodeDecodeError as exc:
            raise SentimentError(
                f"{str(path)!r} is not valid {encoding} (byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); set data.encoding to the file's real encoding"
            ) from exc
        return text.removeprefix("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first_bad = exc
    for fallback in FALLBACK_ENCODINGS:
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            continue
        log.warning(
            "%s is not UTF-8 (byte 0x%02x at offset %d): read as %s; set data.encoding to choose",
            path,
            raw[first_bad.start],
            first_bad.start,
            fallback,
        )
        return text
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _typed_column(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Integer-looking columns become int64 (labels 0/1), others stay strings; nulls stay.

    Checked over Arrow (``\\p{Nd}`` are the decimal digits Python's ``int`` reads); digits Arrow
    cannot cast (not ASCII, beyond int64) are converted value by value.
    """
    if values.null_count == len(values):
        return values
    stripped = pc.utf8_trim_whitespace(values)
    if not pc.all(pc.match_substring_regex(stripped, _INTEGER_ARROW)).as_py():
        return values
    try:
        return pc.cast(pc.replace_substring_regex(stripped, r"^\+", ""), pa.int64())
    except pa.ArrowInvalid:
        try:
            return pa.chunked_array(
                [pa.array([None if v is None else int(v) for v in values.to_pylist()])]
            )
        except (OverflowError, pa.ArrowInvalid):  # beyond int64: keep the digits as text
            return values


def read_delimited(path: Path, sep: str, encoding: str | None = None) -> Dataset:
    """A CSV/TSV file as a Dataset of its columns; empty cells are None."""
    import pandas as pd

    kind = "TSV" if sep == "\t" else "CSV"
    text = decode(path.read_bytes(), path, encoding).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SentimentError(
            f"data file {str(path)!r} is empty; it needs a header row and one row per example"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
        )
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        hint = "put fields that hold the separator or a newline in double quotes"
        if sep == "," and "\t" in text.split("\n", 1)[0]:
            hint = "the header holds tabs: name the file .tsv"
        raise SentimentError(f"could not parse {str(path)!r} as {kind}: {detail}; {hint}") from exc
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed and len(unnamed) == len(frame.columns):
        raise SentimentError(
            f"data file {str(path)!r} has no header row; add one (e.g. text,label)"
        )
    if frame.empty:
        raise SentimentError(
            f"data file {str(path)!r} has no rows (only a header: "
            f"{', '.join(map(str, frame.columns))}); every split needs examples"
        )
    if len(frame.columns) == 1 and sep == "," and "\t" in str(frame.columns[0]):
        raise SentimentError(
            f"{str(path)!r} looks tab-separated (header {frame.columns[0]!r}); name it .tsv"
        )
    table = pa.Table.from_pandas(frame, preserve_index=False)  # empty cells (NaN) become nulls
    columns = {}
    for c, values in zip(frame.columns, table.columns, strict=True):
        values = _typed_column(values)
        if pa.types.is_large_string(values.type):
            values = values.cast(pa.string())
        columns[str(c).strip()] = values
    return Dataset.from_dict(columns)


def read_file(path: Path, encoding: str | None = None) -> Dataset:
    """One data file (``.csv``, ``.tsv``, ``.jsonl``/``.json``, ``.parquet``) as a Dataset."""
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SentimentError(
            f"data file {str(path)!r} has an unsupported type; use .csv, .tsv, .jsonl or .parquet"
        )
    if path.suffix.lower() in DELIMITED:
        return read_delimited(path, DELIMITED[path.suffix.lower()], encoding)
    from datasets import load_dataset

    try:
        return load_dataset(fmt, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for unreadable files
        if "corresponds to no data" in str(exc) or "No columns to parse" in str(exc):
            raise SentimentError(
                f"data file {str(path)!r} has no rows; every split needs examples"
            ) from exc
        raise SentimentError(
            f"could not read {str(path)!r} as {fmt}: {exc}".splitlines()[0]
        ) from exc
