"""Whole-column work on a dataset's Arrow table, with no Python list of a column: column access,
the first offending row, label mapping, the content fingerprint and the tokenization workers.

:mod:`sentiment_hf.data.load` validates with these and words the error of the first offending row
itself, so the messages are those of a row-by-row check at a fraction of its cost.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Bumped whenever the bytes :func:`fingerprint` hashes change (v1 hashed Python values).
FINGERPRINT_VERSION = b"sentiment-hf data fingerprint v2\n"


def column(ds: Any, name: str) -> pa.ChunkedArray:
    """Column ``name`` of a ``datasets.Dataset`` as Arrow, with its ``select`` applied."""
    values = ds.with_format("arrow")[name]
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """The index of the first true value of a boolean column, or None."""
    found = pc.index(mask, True).as_py()
    return None if found < 0 else found


def is_text(values: pa.ChunkedArray) -> bool:
    """True when the column holds strings (``string`` or ``large_string``)."""
    return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)


def first_bad_text(values: pa.ChunkedArray) -> int | None:
    """The first row that is empty (null) or, in a column that is not text, any row (row 0)."""
    if not len(values):
        return None
    return first_true(pc.is_null(values)) if is_text(values) else 0


def encode_labels(values: pa.ChunkedArray, names: list[str]) -> pa.ChunkedArray:
    """Class indices (int64) of raw labels, null where a label is missing or not a class.

    A label is a class name (string column) or an index ``0..len(names)-1`` (integer column);
    booleans, floats and anything else are never classes, as in :func:`encode_label`.
    """
    if is_text(values):
        return pc.cast(pc.index_in(values, value_set=pa.array(names, values.type)), pa.int64())
    if pa.types.is_integer(values.type):
        as_int = pc.cast(values, pa.int64())
        valid = pc.and_(pc.greater_equal(as_int, 0), pc.less(as_int, len(names)))
        return pc.if_else(valid, as_int, pa.scalar(None, pa.int64()))
    return pa.chunked_array([pa.nulls(len(values), pa.int64())])


def distinct(values: pa.ChunkedArray) -> list[Any]:
    """The distinct non-null values of a column, as Python values (first appearance order)."""
    return pc.unique(values).drop_null().to_pylist()


def group_codes(values: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """``(codes, keys)``: each row's group number, groups numbered by first appearance."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def resolve_num_proc(num_proc: int | None) -> int:
    """Tokenization processes: ``num_proc`` when set, else 1.

    Not one per CPU by default: a forked ``datasets.map`` pool hung (workers idle, parent
    waiting) in ``benchmarks/data_loading.py`` on a 100,000-row split here.
    """
    return 1 if num_proc is None else num_proc


# ---------------------------------------------------------------------- fingerprint
class _ColumnDigest:
    """Hashes a column chunk by chunk so that how it is chunked does not matter: the value
    lengths and the value bytes go to two separate streams."""

    def __init__(self) -> None:
        self.lengths = hashlib.sha256()
        self.values = hashlib.sha256()

    def add(self, chunk: pa.Array) -> None:
        kind = chunk.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            width = np.int64 if pa.types.is_large_string(kind) else np.int32
            offsets = np.frombuffer(chunk.buffers()[1], dtype=width)
            offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
            data = chunk.buffers()[2]
            self.lengths.update(np.diff(offsets).astype("<i8").tobytes())
            if data is not None and len(chunk):
                self.values.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):  # multi-hot labels
            self.lengths.update(pc.list_value_length(chunk).to_numpy().astype("<i8").tobytes())
            flat = pc.list_flatten(chunk).to_numpy(zero_copy_only=False)
            self.values.update((flat >= 0.5).astype(np.uint8).tobytes())
        else:  # class indices
            self.values.update(pc.cast(chunk, pa.int64()).to_numpy().astype("<i8").tobytes())

    def digest(self) -> bytes:
        return self.lengths.digest() + self.values.digest()


def fingerprint(dd: Any) -> str:
    """SHA-256 over every split's ``text`` and ``label`` columns, order-sensitive.

    Hashes the UTF-8 bytes and lengths of the texts and the class indices (multi-hot labels as
    0/1) straight from the Arrow buffers, chunk by chunk; the same rows give the same
    fingerprint however they were read, cut or chunked.
    """
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    for split in sorted(dd):
        ds = dd[split]
        digest.update(b"%s\x00%d\n" % (split.encode(), len(ds)))
        for name in ("text", "label"):
            part = _ColumnDigest()
            for chunk in column(ds, name).chunks:
                part.add(chunk)
            digest.update(name.encode() + part.digest())
    return digest.hexdigest()


def encode_label(label: Any, index: dict[str, int]) -> int | None:
    """The class index of one raw label (a name or an index), or None when it is not one."""
    if isinstance(label, str) and label in index:
        return index[label]
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(index):
        return label
    return None
