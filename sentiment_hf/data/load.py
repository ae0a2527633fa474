"""Load, validate and tokenize the train / validation / test splits.

``data.source`` is a hub dataset id, a directory of the raw Cornell ``rt-polarity.pos`` /
``rt-polarity.neg`` files, a directory of ``{split}.csv|tsv|jsonl|parquet`` files, or one such
file (then cut into splits stratified by label); files are read by :mod:`sentiment_hf.data.readers`.
Every split ends with a ``text`` and an integer ``label`` column; the label names travel with it
into ``model.config.id2label``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data import arrow as arrowdata
from sentiment_hf.data.arrow import fingerprint
from sentiment_hf.data.readers import FILE_FORMATS, read_file, require_one_type
from sentiment_hf.data.stratify import stratified_cut
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import looks_like_path
from sentiment_hf.tasks import label_sets
from sentiment_hf.tasks.task import MULTI_LABEL_TASK, SINGLE_LABEL, Task, task_of_data

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
RT_FILES = {"pos": "rt-polarity.pos", "neg": "rt-polarity.neg"}
RT_LABEL_NAMES = ["neg", "pos"]


@dataclass
class SentimentData:
    """Validated splits (``text``, ``label``), the label names and a content fingerprint."""

    splits: DatasetDict
    label_names: list[str]
    fingerprint: str
    source: str
    #: the task the labels describe; multi-label: `label` is a float multi-hot list
    task: Task = SINGLE_LABEL


def read_rt_polarity(directory: str | Path) -> DatasetDict:
    """Read the raw Cornell files exactly as the hub builder does (8,530 / 1,066 / 1,066).

    Lines are decoded as latin-1 and split on ``\\n`` only (cp1252 byte 0x85 would otherwise
    become a NEL line break); each class is cut into contiguous 80/10/10 blocks, positives first.
    """
    directory = Path(directory)
    lines = {}
    for name, filename in RT_FILES.items():
        with open(directory / filename, encoding="latin-1") as handle:
            lines[name] = [line.strip() for line in handle.readlines()]
    features = Features({"text": Value("string"), "label": ClassLabel(names=RT_LABEL_NAMES)})
    out = {}
    n = len(lines["pos"])
    i1, i2 = int(n * 0.8 + 0.5), int(n * 0.9 + 0.5)
    for split, (lo, hi) in zip(SPLITS, [(0, i1), (i1, i2), (i2, None)], strict=True):
        pos, neg = lines["pos"][lo:hi], lines["neg"][lo:hi]
        out[split] = Dataset.from_dict(
            {"text": pos + neg, "label": [1] * len(pos) + [0] * len(neg)}, features=features
        )
    return DatasetDict(out)


def _is_local(source: str) -> bool:
    if Path(source).expanduser().exists():
        return True
    if looks_like_path(source) or Path(source).suffix in FILE_FORMATS:
        raise SentimentError(
            f"data.source path {source!r} does not exist; point it at the rt-polarity directory, "
            "a folder of train/validation/test files, or one CSV/TSV/JSONL/parquet file"
        )
    return False


def _load_local(path: Path, cfg: DataConfig) -> DatasetDict:
    if path.is_dir():
        if all((path / f).is_file() for f in RT_FILES.values()):
            return read_rt_polarity(path)
        found = {}
        wanted = {
            "train": cfg.train_split,
            "validation": cfg.validation_split,
            "test": cfg.test_split,
        }
        for split, name in wanted.items():
            for suffix in FILE_FORMATS:
                candidate = path / f"{name}{suffix}"
                # a directory, FIFO or broken link by a split's name is an error, not absent
                if os.path.lexists(candidate):
                    found[split] = _read_file(candidate, cfg)
                    break
        if not found:
            raise SentimentError(
                f"data.source directory {str(path)!r} has neither rt-polarity.pos/.neg nor "
                f"{'/'.join(wanted.values())}.csv|tsv|jsonl|parquet files"
            )
        return DatasetDict(found)
    return DatasetDict({"train": _read_file(path, cfg)})


def _read_file(path: Path, cfg: DataConfig) -> Dataset:
    """One data file; its text and label column(s) must each hold one JSON type."""
    ds = read_file(path, cfg.encoding)
    roles = [(cfg.text_column, "text"), (cfg.label_column, "label")]
    roles += [(name, "flag") for name in cfg.label_columns or ()]
    require_one_type(ds, path, roles)
    return ds


def _load_hub(cfg: DataConfig) -> DatasetDict:
    from datasets import load_dataset

    try:
        raw = load_dataset(cfg.source)
    except Exception as exc:  # network, offline mode or unknown id
        raise SentimentError(
            f"could not load dataset {cfg.source!r} from the Hugging Face hub "
            f"({type(exc).__name__}); offline, pass a local copy instead, e.g. "
            "data.source=../shared/data/rt-polarity"
        ) from exc
    rename = {cfg.train_split: "train", cfg.validation_split: "validation", cfg.test_split: "test"}
    return DatasetDict({rename[k]: v for k, v in raw.items() if k in rename})


class MissingSplit(SentimentError):
    """A data source lacks splits a stage asked for (``missing``), and none could be cut."""

    def __init__(self, missing: list[str], message: str) -> None:
        super().__init__(message)
        self.missing = missing


def _carve_missing_splits(
    dd: DatasetDict, cfg: DataConfig, seed: int, needed: tuple[str, ...] = SPLITS
) -> DatasetDict:
    """Cut validation/test out of train, stratified by label, when a source only has train.

    Whatever ``needed`` says, a source with train is always cut the same way, so every stage
    sees the rows training held out.
    """
    missing = [s for s in ("test", "validation") if s not in dd]
    if not missing or ("train" not in dd and all(s in dd for s in needed)):
        return dd  # nothing to cut, or a folder holding just the splits asked for
    if "train" not in dd:
        present = ", ".join(dd) or "none"
        raise MissingSplit(
            [s for s in needed if s not in dd],
            f"data source {cfg.source!r} has no {cfg.train_split!r} split to cut "
            f"{' and '.join(missing)} from (found: {present}); add the missing split files",
        )
    out = dict(dd)
    train = out["train"]
    check_columns(train, "train", cfg)
    task = task_of_data(
        bool(cfg.label_columns) or label_sets.detect_multi_label(DatasetDict(out), cfg)
    )

    def strata(ds: Dataset) -> Any:
        # label sets are too many to stratify by: a multi-label source is cut at random (seeded)
        if not _CODECS[task.name].stratify:
            return pa.chunked_array([pa.array(np.zeros(len(ds), dtype=np.int64))])
        return arrowdata.column(ds, cfg.label_column)

    labels = strata(train)
    empty = arrowdata.first_true(pc.is_null(labels))
    if empty is not None:
        raise SentimentError(
            f"row {empty} of {cfg.source!r}: the {cfg.label_column!r} cell is empty; "
            "label the row or drop it"
        )
    codes, keys = arrowdata.group_codes(labels)
    counts = dict(zip(keys, np.bincount(codes, minlength=len(keys)).tolist(), strict=True))
    need = len(missing) + 1
    small = {k: c for k, c in counts.items() if c < need}
    if small:
        key, count = next(iter(small.items()))
        raise SentimentError(
            f"class {key!r} has only {count} example(s) in {cfg.source!r}: cutting train / "
            f"{' / '.join(missing)} by label needs at least {need} per class; add examples, "
            "or supply the validation/test splits as their own files"
        )
    for split, size in (("test", cfg.test_size), ("validation", cfg.validation_size)):
        if split in out:
            continue
        if not 0 < size < 1:
            raise SentimentError(f"data.{split}_size must be between 0 and 1, got {size}")
        kept, held = stratified_cut(strata(out["train"]), size, seed)
        out["train"], out[split] = out["train"].select(kept), out["train"].select(held)
    return DatasetDict(out)


def _label_names_of(ds: Dataset, label_column: str) -> list[str] | None:
    feature = ds.features.get(label_column)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def _row_error(
    row: int, text: Any, label: Any, split: str, cfg: DataConfig, names: list[str]
) -> None:
    """Raise the error of one offending row (the first one :func:`_normalize` found)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise SentimentError(
            f"{split} row {row}: the {cfg.text_column!r} cell is empty; fill it or drop the "
            "row (`sentiment data check` lists every such row)"
        )
    if not isinstance(text, str):
        raise SentimentError(
            f"{split} row {row}: text is {type(text).__name__}, not a string; clean the data"
        )
    if label is None:
        raise SentimentError(
            f"{split} row {row}: the {cfg.label_column!r} cell is empty; label the row or drop it"
        )
    if arrowdata.encode_label(label, {name: i for i, name in enumerate(names)}) is None:
        raise SentimentError(
            f"{split} row {row}: label {label!r} is outside the declared set {names}; "
            "fix the data or set data.label_names"
        )


def _normalize(ds: Dataset, split: str, cfg: DataConfig, label_names: list[str]) -> Dataset:
    """Return ``ds`` with exactly a string ``text`` and an int ``label`` column, validated.

    Checked and mapped column-wise over Arrow; the first offending row is worded as a
    row-by-row check would (empty or non-string text, then empty or unknown label).
    """
    if len(ds) == 0:
        raise SentimentError(f"the {split} split is empty; check data.source and its files")
    texts = arrowdata.column(ds, cfg.text_column)
    labels = arrowdata.column(ds, cfg.label_column)
    encoded = arrowdata.encode_labels(labels, label_names)
    bad = [arrowdata.first_bad_text(texts), arrowdata.first_true(pc.is_null(encoded))]
    bad = [row for row in bad if row is not None]
    if bad:
        row = min(bad)
        _row_error(row, texts[row].as_py(), labels[row].as_py(), split, cfg, label_names)
        raise AssertionError(f"{split} row {row} flagged but passes")  # pragma: no cover
    features = Features({"text": Value("string"), "label": ClassLabel(names=label_names)})
    return Dataset.from_dict({"text": texts.cast(pa.string()), "label": encoded}, features=features)


def check_columns(ds: Dataset, split: str, cfg: DataConfig) -> None:
    """Raise a clear error unless ``ds`` has the recipe's text and label column(s)."""
    if cfg.label_columns:
        label_sets.check_label_columns(ds, split, cfg)
    wanted = [(cfg.text_column, "text_column")]
    if not cfg.label_columns:
        wanted.append((cfg.label_column, "label_column"))
    for column, key in wanted:
        if column not in ds.column_names:
            raise SentimentError(
                f"{split} split has no column {column!r} (columns: {', '.join(ds.column_names)}); "
                f"set data.{key}"
            )


def infer_label_names(dd: DatasetDict, cfg: DataConfig) -> list[str]:
    """``data.label_names``, else the label feature's names, else the sorted values found."""
    if cfg.label_names:
        if len(set(cfg.label_names)) != len(cfg.label_names) or len(cfg.label_names) < 2:
            raise SentimentError("data.label_names must list at least two distinct names")
        return list(cfg.label_names)
    for ds in dd.values():
        if cfg.label_column in ds.column_names:
            names = _label_names_of(ds, cfg.label_column)
            if names:
                return names
    values = set()
    for ds in dd.values():
        if cfg.label_column in ds.column_names:
            values.update(arrowdata.distinct(arrowdata.column(ds, cfg.label_column)))
    if not values:
        raise SentimentError(
            f"no labels found in column {cfg.label_column!r}; set data.label_column"
        )
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if min(values) < 0:
            raise SentimentError(
                f"labels must be 0..N-1, found {min(values)}; set data.label_names"
            )
        return [str(i) for i in range(max(max(values) + 1, 2))]
    raise SentimentError(
        f"labels in {cfg.label_column!r} mix types; use all strings or all integers 0..N-1"
    )


def read_splits(
    cfg: DataConfig,
    seed: int = 42,
    splits: tuple[str, ...] = SPLITS,
    whole_file: bool = False,
    carve: bool = True,
) -> DatasetDict:
    """The raw splits of ``cfg.source`` (columns as in the files), missing ones carved out.

    ``whole_file``: a single-file source is not cut; all of its rows are each split asked for
    (``sentiment eval --data FILE``). ``carve=False``: nothing is cut out of train; every split
    asked for must be its own file (data other than the run's: ``calibrate --data``).
    """
    source = cfg.source
    local = _is_local(source)
    raw = _load_local(Path(source).expanduser(), cfg) if local else _load_hub(cfg)
    if whole_file and local and Path(source).expanduser().is_file():
        return DatasetDict({split: raw["train"] for split in splits})
    if not carve:
        missing = [split for split in splits if split not in raw]
        if missing:
            names = {"train": cfg.train_split, "validation": cfg.validation_split}
            files = " and ".join(
                f"{names.get(s, cfg.test_split)}.csv|tsv|jsonl|parquet" for s in missing
            )
            raise MissingSplit(
                missing,
                f"data source {source!r} has no {' or '.join(missing)} split: other data than "
                f"the run's is never cut out of train; give a folder holding {files}",
            )
        return raw
    return _carve_missing_splits(raw, cfg, seed, splits)


def load_splits(
    cfg: DataConfig,
    seed: int = 42,
    splits: tuple[str, ...] = SPLITS,
    whole_file: bool = False,
    carve: bool = True,
) -> SentimentData:
    """Load the splits a recipe names, validate them and apply the sample limits.

    Only the splits asked for must exist: a folder holding just ``test.csv`` serves
    ``splits=("test",)``. ``whole_file`` and ``carve`` are :func:`read_splits`'.
    """
    source = cfg.source
    raw = read_splits(cfg, seed, splits, whole_file, carve)
    for split in splits:
        if split in raw:
            check_columns(raw[split], split, cfg)
    task = task_of_data(label_sets.detect_multi_label(raw, cfg))
    codec = _CODECS[task.name]
    label_names = codec.infer_label_names(raw, cfg)
    limits = {
        "train": cfg.max_train_samples,
        "validation": cfg.max_eval_samples,
        "test": cfg.max_test_samples,
    }
    out = {}
    for split in splits:
        if split not in raw:
            raise MissingSplit([split], f"data source {source!r} has no {split} split")
        ds = codec.normalize(raw[split], split, cfg, label_names)
        limit = limits[split]
        if limit is not None:
            if limit < 1:
                raise SentimentError(f"data.max_{split}_samples must be >= 1, got {limit}")
            if limit < len(ds):
                # Shuffle before cutting: the raw rt-polarity splits are ordered by class.
                ds = ds.shuffle(seed=seed).select(range(limit))
        out[split] = ds
    dd = DatasetDict(out)
    return SentimentData(dd, label_names, fingerprint(dd), source, task=task)


@dataclass(frozen=True)
class _LabelCodec:
    """How a task's labels are read: names, normalisation, stratified cuts or not."""

    infer_label_names: Callable[[DatasetDict, DataConfig], list[str]]
    normalize: Callable[[Dataset, str, DataConfig, list[str]], Dataset]
    stratify: bool


_CODECS = {
    SINGLE_LABEL.name: _LabelCodec(infer_label_names, _normalize, stratify=True),
    MULTI_LABEL_TASK.name: _LabelCodec(
        label_sets.infer_label_names, label_sets.normalize, stratify=False
    ),
}
