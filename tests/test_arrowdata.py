"""Column-wise loading: the Arrow fingerprint, the stratified cut, label mapping, the first
offending row's error, integer columns of CSV files and ``data.num_proc``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from datasets import Dataset, DatasetDict, concatenate_datasets
from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data import arrow as arrowdata
from sentiment_hf.data.load import load_splits, read_rt_polarity
from sentiment_hf.data.readers import read_file
from sentiment_hf.data.stratify import stratified_cut, stratum
from sentiment_hf.data.tokenize import tokenize_splits
from sentiment_hf.errors import SentimentError


def _dd(texts: list[str], labels: list[Any]) -> DatasetDict:
    return DatasetDict({"train": Dataset.from_dict({"text": texts, "label": labels})})


TEXTS = ["a fine film", "dull", "ab", "c", "naïve — but warm", ""]
LABELS = [1, 0, 1, 0, 1, 0]


def test_fingerprint_is_stable_and_ignores_how_rows_are_stored() -> None:
    base = arrowdata.fingerprint(_dd(TEXTS, LABELS))
    assert base == arrowdata.fingerprint(_dd(list(TEXTS), list(LABELS)))
    # the same rows as two Arrow chunks, and as a selection of a bigger table
    half = len(TEXTS) // 2
    chunked = concatenate_datasets(
        [
            Dataset.from_dict({"text": t, "label": y})
            for t, y in ((TEXTS[:half], LABELS[:half]), (TEXTS[half:], LABELS[half:]))
        ]
    )
    assert len(chunked.data.table.column("text").chunks) == 2
    assert arrowdata.fingerprint(DatasetDict({"train": chunked})) == base
    padded = Dataset.from_dict({"text": ["x", *TEXTS, "y"], "label": [0, *LABELS, 1]})
    selected = padded.select(range(1, len(TEXTS) + 1))
    assert arrowdata.fingerprint(DatasetDict({"train": selected})) == base
    sliced = DatasetDict({"train": Dataset(padded.data.slice(1, len(TEXTS)))})
    assert arrowdata.fingerprint(sliced) == base


@pytest.mark.parametrize(
    "change",
    [
        lambda t, y: (["a fine filM", *t[1:]], y),  # one character
        lambda t, y: (t, [0, *y[1:]]),  # one label
        lambda t, y: ([*t[:2], "a", "bc", *t[4:]], y),  # a character moved across rows
        lambda t, y: ([t[1], t[0], *t[2:]], [y[1], y[0], *y[2:]]),  # two rows swapped
        lambda t, y: (t[:-1], y[:-1]),  # the last (empty) row dropped
        lambda t, y: ([*t, ""], [*y, 0]),  # an empty row added
    ],
)
def test_fingerprint_sees_any_change_of_a_text_or_label(change: Any) -> None:
    texts, labels = change(list(TEXTS), list(LABELS))
    assert arrowdata.fingerprint(_dd(texts, labels)) != arrowdata.fingerprint(_dd(TEXTS, LABELS))


def test_fingerprint_covers_split_names_and_multi_hot_labels() -> None:
    ds = Dataset.from_dict({"text": TEXTS[:2], "label": [1, 0]})
    assert arrowdata.fingerprint(DatasetDict({"train": ds})) != arrowdata.fingerprint(
        DatasetDict({"test": ds})
    )
    hot = [[1.0, 0.0], [0.0, 0.0]]
    multi = arrowdata.fingerprint(_dd(TEXTS[:2], hot))
    assert multi == arrowdata.fingerprint(_dd(TEXTS[:2], [[0.9, 0.1], [0.0, 0.2]]))  # >= 0.5
    assert multi != arrowdata.fingerprint(_dd(TEXTS[:2], [[1.0, 1.0], [0.0, 0.0]]))
    assert multi != arrowdata.fingerprint(_dd(TEXTS[:2], [[1.0, 0.0], [0.0, 1.0]]))


def _reference_cut(labels: list[Any], size: float, seed: int) -> tuple[list[int], list[int]]:
    """The row-by-row cut this project shipped before the Arrow one (the oracle)."""
    n = len(labels)
    n_out = math.ceil(size * n)
    groups: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(stratum(label), []).append(i)
    exact = {key: len(rows) * n_out / n for key, rows in groups.items()}
    take = {k: min(max(1, math.floor(v)), len(groups[k]) - 1) for k, v in exact.items()}
    for key in sorted(groups, key=lambda k: exact[k] - math.floor(exact[k]), reverse=True):
        if sum(take.values()) >= n_out:
            break
        if take[key] < len(groups[key]) - 1:
            take[key] += 1
    for key in sorted(groups, key=lambda k: len(groups[k]), reverse=True):
        while sum(take.values()) > n_out and take[key] > 1:
            take[key] -= 1
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for key in groups:
        rows = np.array(groups[key])[rng.permutation(len(groups[key]))].tolist()
        held += rows[: take[key]]
        kept += rows[take[key] :]
    return sorted(kept), sorted(held)


@pytest.mark.parametrize("seed", [0, 7, 42])
def test_stratified_cut_over_arrow_matches_the_row_by_row_cut(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = ["pos", "neg", "neu", "rare"]
    labels = [names[i] for i in rng.choice(4, size=337, p=[0.5, 0.3, 0.18, 0.02])]
    for size in (0.1, 0.25, 0.5):
        want = _reference_cut(labels, size, seed)
        for column in (pa.chunked_array([labels[:100], labels[100:]]), labels):
            kept, held = stratified_cut(column, size, seed)
            assert (kept.tolist(), held.tolist()) == want
    ints = rng.integers(0, 3, size=101).tolist()
    assert [x.tolist() for x in stratified_cut(pa.array(ints), 0.2, seed)] == list(
        _reference_cut(ints, 0.2, seed)
    )


def test_loaded_rt_polarity_keeps_the_raw_rows_in_order(rt_dir: Path) -> None:
    raw = read_rt_polarity(rt_dir)
    data = load_splits(DataConfig(source=str(rt_dir)))
    for split, ds in raw.items():
        got = data.splits[split].with_format("arrow")[:]
        want = ds.with_format("arrow")[:]
        assert got.column("text").equals(want.column("text").cast(pa.string())), split
        assert got.column("label").to_pylist() == want.column("label").to_pylist(), split


@pytest.mark.parametrize(
    ("lines", "cfg", "message"),
    [
        # the first offending row wins, whichever check it fails
        (["ok,pos", "fine,meh", ",pos"], {}, "train row 1: label 'meh' is outside the declared"),
        (["ok,pos", ",pos", "fine,meh"], {}, "train row 1: the 'text' cell is empty"),
        (["ok,pos", "fine,", "x,meh"], {}, "train row 1: the 'label' cell is empty"),
        (["ok,1", "fine,2", "x,0"], {"label_names": ["neg", "pos"]}, "row 1: label 2 is outside"),
        (["1,pos", "2,neg"], {}, "train row 0: text is int, not a string"),
    ],
)
def test_first_offending_row_is_reported(
    tmp_path: Path, lines: list[str], cfg: dict, message: str
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    with pytest.raises(SentimentError) as info:
        load_splits(DataConfig(source=str(folder), **{"label_names": ["neg", "pos"], **cfg}))
    assert message in str(info.value)


def test_labels_map_by_name_or_index_never_by_bool_or_float() -> None:
    names = ["neg", "pos"]
    enc = arrowdata.encode_labels(pa.chunked_array([["pos", "neg", "x", None]]), names)
    assert enc.to_pylist() == [1, 0, None, None]
    enc = arrowdata.encode_labels(pa.chunked_array([[1, 0, 2, -1, None]]), names)
    assert enc.to_pylist() == [1, 0, None, None, None]
    for values in ([True, False], [1.0, 0.0]):
        assert arrowdata.encode_labels(pa.chunked_array([values]), names).null_count == 2


def test_csv_integer_columns_are_read_as_ints(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label,big\n7,+1 ,99999999999999999999\n008,-2,1\n9,٣,\n", "utf-8")
    ds = read_file(path)
    assert ds["text"][:] == [7, 8, 9]
    assert ds["label"][:] == [1, -2, 3]  # sign, spaces and any decimal digit, as int() reads
    assert ds["big"][:] == ["99999999999999999999", "1", None]  # beyond int64: kept as text


def test_num_proc_default_and_bad_value() -> None:
    assert arrowdata.resolve_num_proc(None) == 1
    assert arrowdata.resolve_num_proc(3) == 3
    with pytest.raises(SentimentError, match=r"data\.num_proc must be 1 or more, got 0"):
        DataConfig(num_proc=0)


def test_tokenizing_in_two_processes_gives_the_same_rows(
    rt_dir: Path, tmp_path: Path, minilm_dir: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    data = load_splits(DataConfig(source=str(rt_dir), max_train_samples=300), splits=("train",))
    one = tokenize_splits(data, tokenizer, 32, cache_dir=tmp_path / "one", num_proc=1)
    two = tokenize_splits(data, tokenizer, 32, cache_dir=tmp_path / "two", num_proc=2)
    assert list((tmp_path / "two").rglob("*_of_00002.arrow"))  # really two workers
    assert one["train"].with_format("arrow")[:].equals(two["train"].with_format("arrow")[:])
