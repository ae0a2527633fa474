"""Read one data file as people have it: CSV/TSV with a BOM, CRLF, quoted newlines, a
latin-1 / cp1252 encoding, empty cells; JSONL and parquet through ``datasets``.

Every problem becomes one :class:`SentimentError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import io
import json
import logging
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from datasets import Dataset, Json
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
NUL = b"\0"
_INTEGER = re.compile(r"[+-]?\d+")
_INTEGER_ARROW = r"^[+-]?\p{Nd}+$"


#: What ``stat`` calls the kinds of path that are no regular file.
_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory, not a data file"),
    (stat.S_ISFIFO, "a FIFO, not a regular file"),
    (stat.S_ISSOCK, "a socket, not a regular file"),
    (stat.S_ISCHR, "a character device, not a regular file"),
    (stat.S_ISBLK, "a block device, not a regular file"),
)


def _cannot_read(path: Path, exc: OSError) -> SentimentError:
    if isinstance(exc, PermissionError):
        return SentimentError(
            f"cannot read {str(path)!r}: permission denied; make it readable by the user "
            "running sentiment (e.g. chmod a+r) or copy it somewhere readable"
        )
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return SentimentError(
            f"cannot read {str(path)!r}: it links to {str(path.readlink())!r}, which does not "
            "exist; fix the link or remove it"
        )
    reason = exc.strerror or str(exc)
    return SentimentError(f"cannot read {str(path)!r}: {reason[:1].lower()}{reason[1:]}")


def check_readable(path: Path) -> None:
    """Raise one clear error unless ``path`` is a regular file this process may open.

    Checked before reading: a FIFO would block the read forever, a directory or a missing
    permission would surface as a traceback from deep inside a reader.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _cannot_read(path, exc) from exc
    for test, what in _NOT_REGULAR:
        if test(mode):
            raise SentimentError(
                f"data file {str(path)!r} is {what}; point data.source at a CSV/TSV/JSONL/"
                "parquet file, or a folder of train/validation/test files"
            )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _cannot_read(path, exc) from exc


def read_bytes(path: Path) -> bytes:
    """The bytes of data file ``path``, any reason it cannot be read as one clear error."""
    check_readable(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _cannot_read(path, exc) from exc


def decode(raw: bytes, path: Path, encoding: str | None = None) -> str:
    """``raw`` as text: ``encoding`` when given, else UTF-8 (BOM dropped) then cp1252/latin-1.

    Text holding NUL is refused: no CSV/TSV/JSON text has one, a binary file or undeclared
    UTF-16/32 text does."""
    text = _decode(raw, path, encoding)
    nul = text.find("\x00")
    if nul >= 0:
        where = f"character {nul}" if encoding else f"offset {raw.find(NUL)}"
        utf16 = not encoding and raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        kind = "it is UTF-16 text" if utf16 else "it is a binary file, or UTF-16/32 text"
        raise SentimentError(
            f"data file {str(path)!r} holds NUL bytes (the first at {where}): {kind}; save it "
            "as UTF-8 text, or set data.encoding (e.g. utf-16) to its real encoding"
        )
    return text


def _decode(raw: bytes, path: Path, encoding: str | None = None) -> str:
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
        _warn_fallback(path, raw[first_bad.start], first_bad.start, fallback)
        return text
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _warn_fallback(path: Path | str, byte: int, offset: int, fallback: str) -> None:
    log.warning(
        "%s is not UTF-8 (byte 0x%02x at offset %d): read as %s; set the encoding to choose",
        path,
        byte,
        offset,
        fallback,
    )


def _first_undecodable(
    open_binary: Callable[[], BinaryIO], encoding: str, block: int = 1 << 20
) -> tuple[int, int] | None:
    """(offset, byte) of the first byte of the file ``open_binary`` opens that ``encoding``
    cannot decode, read in blocks (never the whole file in memory); None when all of it
    decodes."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open_binary() as handle:
        while True:
            chunk = handle.read(block)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:  # exc.object: bytes held back + this chunk
                held = len(exc.object) - len(chunk)
                return offset - held + exc.start, exc.object[exc.start]
            if not chunk:
                return None
            offset += len(chunk)


def stream_encoding(path: Path | str, open_binary: Callable[[], BinaryIO] | None = None) -> str:
    """The encoding :func:`decode`'s rule reads ``path`` with (UTF-8 with its BOM dropped, then
    :data:`FALLBACK_ENCODINGS`), found by streaming the file once: the same rule for a file
    streamed (``predict --file``) as for one read whole (data for train and eval).
    ``open_binary`` opens it (default: the local file ``path``; an fsspec opener for a URL)."""
    open_binary = open_binary or (lambda: open(path, "rb"))  # noqa: SIM115 (opened by the caller's with)
    bad = _first_undecodable(open_binary, "utf-8")
    if bad is None:
        return "utf-8-sig"
    for fallback in FALLBACK_ENCODINGS:
        if fallback == FALLBACK_ENCODINGS[-1] or _first_undecodable(open_binary, fallback) is None:
            _warn_fallback(path, bad[1], bad[0], fallback)
            return fallback
    raise AssertionError("unreachable")  # pragma: no cover


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
    text = decode(read_bytes(path), path, encoding).replace("\r\n", "\n").replace("\r", "\n")
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


def _root_message(exc: BaseException) -> str:
    """The message of the innermost cause (``datasets`` wraps the reader's own error)."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _load(fmt: str, path: Path, encoding: str | None) -> Dataset:
    from datasets import load_dataset

    if fmt != "json":
        check_readable(path)
        return load_dataset(fmt, data_files=str(path), split="train")
    # JSON through the same decode policy as CSV: Arrow's reader takes invalid UTF-8 unchecked
    raw = read_bytes(path)
    text = decode(raw, path, encoding)
    utf8 = text.encode("utf-8")
    if utf8 == raw:
        return load_dataset(fmt, data_files=str(path), split="train")
    with tempfile.TemporaryDirectory(prefix="sentiment-hf-utf8-") as folder:
        copy = Path(folder) / path.name
        copy.write_bytes(utf8)
        return load_dataset(fmt, data_files=str(copy), split="train")


def read_file(path: Path, encoding: str | None = None) -> Dataset:
    """One data file (``.csv``, ``.tsv``, ``.jsonl``/``.json``, ``.parquet``) as a Dataset."""
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SentimentError(
            f"data file {str(path)!r} has an unsupported type; use .csv, .tsv, .jsonl or .parquet"
        )
    if path.suffix.lower() in DELIMITED:
        return read_delimited(path, DELIMITED[path.suffix.lower()], encoding)
    try:
        return _load(fmt, path, encoding)
    except SentimentError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable files
        if "corresponds to no data" in str(exc) or "No columns to parse" in str(exc):
            raise SentimentError(
                f"data file {str(path)!r} has no rows; every split needs examples"
            ) from exc
        raise SentimentError(
            f"could not read {str(path)!r} as {fmt}: {_root_message(exc)}"
        ) from exc


#: How a JSON value's type is named in an error.
_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
}
_FIX = {
    "label": 'class names (e.g. "neg"/"pos") or integers 0..N-1',
    "flag": "0 or 1 on every row",
    "text": "every text a JSON string in quotes",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _is_label_type(kind: pa.DataType) -> bool:
    """Class names, class indices, all missing, or lists of names (multi-label)."""
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_null(kind)
        or pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
    )


def _require_label_type(ds: Dataset, path: Path, name: str) -> None:
    values = ds.with_format("arrow")[name]
    if _is_label_type(values.type):
        return
    row = pc.index(pc.is_valid(values), True).as_py()
    value = values[row].as_py()
    kind = _json_type(value)
    raise SentimentError(
        f"data file {str(path)!r}: column {name!r} holds {kind} values (row {row} is "
        f"{json.dumps(value)[:40]}), which are no labels; give the column {_FIX['label']}"
    )


def require_one_type(ds: Dataset, path: Path, columns: Iterable[tuple[str, str]]) -> None:
    """Raise one clear error when a column of ``columns`` (``(name, role)``, role ``text``,
    ``label`` or ``flag``) mixes JSON types, e.g. ``"label": 1`` on some rows and
    ``"label": "neg"`` on others (``datasets`` reads such a column as a ``Json`` feature,
    which no Arrow kernel takes), or when a ``label`` column holds one type that is no label:
    objects, numbers with decimals, booleans.
    """
    for name, role in columns:
        if name not in ds.column_names:
            continue  # data.check_columns names the missing column
        if not isinstance(ds.features[name], Json):
            if role == "label":
                _require_label_type(ds, path, name)
            continue
        values = ds.with_format("arrow")[name]
        first: tuple[int, object] | None = None
        for row, raw in enumerate(pc.cast(values, pa.string()).to_pylist()):
            value = None if raw is None else json.loads(raw)
            if value is None:
                continue
            if first is None:
                if role == "label" and isinstance(value, list):
                    break  # multi-label: multilabel.parse_label_list words each bad cell
                first = (row, value)
                continue
            kind, first_kind = _json_type(value), _json_type(first[1])
            if kind != first_kind:
                raise SentimentError(
                    f"data file {str(path)!r}: column {name!r} mixes {first_kind} and {kind} "
                    f"values (row {first[0]} is {_article(first_kind)} {first_kind}, "
                    f"{json.dumps(first[1])[:40]}; row {row} is {_article(kind)} {kind}, "
                    f"{json.dumps(value)[:40]}); give the column one type: "
                    f"{_FIX.get(role, 'one JSON type on every row')}"
                )
