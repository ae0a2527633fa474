"""Data sources: the raw Cornell files, local tables, validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data.load import load_splits, read_rt_polarity
from sentiment_hf.errors import SentimentError


def test_raw_loader_reproduces_the_hub_splits(rt_dir: Path) -> None:
    splits = read_rt_polarity(rt_dir)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 8530,
        "validation": 1066,
        "test": 1066,
    }
    assert splits["train"].features["label"].names == ["neg", "pos"]
    for name, ds in splits.items():
        labels = ds["label"]
        half = len(ds) // 2
        # The hub builder orders each split positives first, then negatives (contiguous blocks).
        assert labels[:half] == [1] * half and labels[half:] == [0] * half, name
    train = splits["train"]
    assert train[0]["text"].startswith("the rock is destined to be the 21st century's new")
    # latin-1 decoding keeps cp1252 byte 0x85 as U+0085 (NEL) inside a line, as the hub does.
    all_text = [t for ds in splits.values() for t in ds["text"]]
    assert len(all_text) == 10662
    assert any("\x85" in t for t in all_text)
    assert all(t == t.strip() and t for t in all_text)


def test_load_splits_limits_shuffle_across_classes(rt_dir: Path) -> None:
    data = load_splits(DataConfig(source=str(rt_dir), max_train_samples=200, max_test_samples=50))
    assert len(data.splits["train"]) == 200
    assert len(data.splits["test"]) == 50
    assert len(data.splits["validation"]) == 1066
    assert 60 < sum(data.splits["train"]["label"]) < 140  # both classes, not the first block
    again = load_splits(DataConfig(source=str(rt_dir), max_train_samples=200, max_test_samples=50))
    assert again.fingerprint == data.fingerprint
    other = load_splits(DataConfig(source=str(rt_dir), max_train_samples=201, max_test_samples=50))
    assert other.fingerprint != data.fingerprint


def _write_tables(folder: Path, fmt: str, rows: dict[str, list[dict]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        frame = pd.DataFrame(items)
        if fmt == "csv":
            frame.to_csv(folder / f"{split}.csv", index=False)
        elif fmt == "jsonl":
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
        else:
            frame.to_parquet(folder / f"{split}.parquet")


ROWS = {
    "train": [{"review": f"good {i}", "sentiment": "positive"} for i in range(6)]
    + [{"review": f"bad {i}", "sentiment": "negative"} for i in range(6)],
    "validation": [
        {"review": "fine", "sentiment": "positive"},
        {"review": "meh", "sentiment": "negative"},
    ],
    "test": [
        {"review": "great", "sentiment": "positive"},
        {"review": "awful", "sentiment": "negative"},
    ],
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_local_tables_with_custom_columns_and_string_labels(tmp_path: Path, fmt: str) -> None:
    _write_tables(tmp_path / fmt, fmt, ROWS)
    cfg = DataConfig(source=str(tmp_path / fmt), text_column="review", label_column="sentiment")
    data = load_splits(cfg)
    assert data.label_names == ["negative", "positive"]
    assert data.splits["train"].column_names == ["text", "label"]
    assert data.splits["test"]["label"] == [1, 0]
    assert data.splits["validation"]["text"] == ["fine", "meh"]


def test_single_file_is_cut_into_stratified_splits(tmp_path: Path) -> None:
    # 90/10 imbalance, minority rows clustered at the end: an unstratified cut of 10 test and
    # 9 validation rows misses the 10 minority rows in one split about a third of the time.
    rows = [{"text": f"t{i}", "label": int(i >= 90)} for i in range(100)]
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for seed in (0, 1, 2, 42):
        data = load_splits(DataConfig(source=str(path), label_names=["neg", "pos"]), seed=seed)
        counts = {k: [v["label"].count(0), v["label"].count(1)] for k, v in data.splits.items()}
        assert counts == {"train": [73, 8], "validation": [8, 1], "test": [9, 1]}, seed
        seen = set().union(*(set(v["text"]) for v in data.splits.values()))
        assert len(seen) == 100
    again = load_splits(DataConfig(source=str(path), label_names=["neg", "pos"]), seed=42)
    other = load_splits(DataConfig(source=str(path), label_names=["neg", "pos"]), seed=7)
    assert again.fingerprint == data.fingerprint  # seeded: the same cut every time
    assert other.splits["test"]["text"] != data.splits["test"]["text"]


def test_three_classes_keep_their_shares(tmp_path: Path) -> None:
    names = ["neg", "neu", "pos"]
    rows = [{"text": f"r{i}", "label": names[i % 10 // 4 if i % 10 < 8 else 2]} for i in range(200)]
    path = tmp_path / "three.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    data = load_splits(DataConfig(source=str(path), test_size=0.2, validation_size=0.25))
    per_split = {k: [v["label"].count(i) for i in range(3)] for k, v in data.splits.items()}
    total = [sum(r["label"] == n for r in rows) for n in names]
    assert total == [80, 80, 40]
    assert per_split["test"] == [16, 16, 8]  # 20 % of each class
    assert per_split["validation"] == [16, 16, 8]  # 25 % of the remaining 160
    assert per_split["train"] == [48, 48, 24]


def test_class_too_small_to_stratify_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("text,label\n" + "".join(f"t{i},pos\n" for i in range(20)) + "x,neg\ny,neg\n")
    with pytest.raises(SentimentError) as info:
        load_splits(DataConfig(source=str(path)))
    message = str(info.value)
    assert "class 'neg' has only 2 example(s)" in message
    assert "at least 3 per class" in message and "own files" in message


def test_folder_with_only_the_evaluated_split(tmp_path: Path) -> None:
    folder = tmp_path / "only-test"
    folder.mkdir()
    (folder / "test.csv").write_text("text,label\ngreat,pos\nawful,neg\nfine,pos\n")
    data = load_splits(DataConfig(source=str(folder)), splits=("test",))
    assert data.splits["test"]["label"] == [1, 0, 1]
    with pytest.raises(SentimentError, match="has no 'train' split to cut validation from"):
        load_splits(DataConfig(source=str(folder)), splits=("validation",))


def test_single_file_evaluated_whole(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(30)))
    cfg = DataConfig(source=str(path), label_names=["neg", "pos"])
    whole = load_splits(cfg, splits=("test",), whole_file=True)
    assert whole.splits["test"]["text"] == [f"t{i}" for i in range(30)]
    cut = load_splits(cfg, splits=("test",))
    assert len(cut.splits["test"]) == 3


@pytest.mark.parametrize(
    ("rows", "cfg", "needle"),
    [
        ({"train": [{"text": "a"}]}, {}, "no column 'label'"),
        (
            {"train": [{"text": "a", "label": 5}, {"text": "b", "label": 0}]},
            {"label_names": ["neg", "pos"]},
            "outside the declared set",
        ),
        (
            {"train": [{"text": "a", "label": "meh"}]},
            {"label_names": ["neg", "pos"]},
            "label 'meh' is outside",
        ),
    ],
)
def test_bad_tables_are_rejected(tmp_path: Path, rows: dict, cfg: dict, needle: str) -> None:
    full = {**rows, "validation": rows["train"], "test": rows["train"]}
    _write_tables(tmp_path / "d", "csv", full)
    with pytest.raises(SentimentError) as info:
        load_splits(DataConfig(source=str(tmp_path / "d"), **cfg))
    assert needle in str(info.value)


def test_empty_split_and_missing_paths(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "train.csv").write_text("text,label\na,0\nb,1\n")
    (folder / "validation.csv").write_text("text,label\na,0\n")
    (folder / "test.csv").write_text("text,label\n")
    with pytest.raises(SentimentError, match="has no rows"):
        load_splits(DataConfig(source=str(folder)))
    with pytest.raises(SentimentError, match="does not exist"):
        load_splits(DataConfig(source=str(tmp_path / "missing")))
    with pytest.raises(SentimentError, match="does not exist"):
        load_splits(DataConfig(source="./data/nothing.csv"))
    with pytest.raises(SentimentError, match="neither rt-polarity"):
        load_splits(DataConfig(source=str(tmp_path)))


def test_hub_source_offline_names_the_local_fix() -> None:
    with pytest.raises(SentimentError, match=r"data.source=\.\./shared/data/rt-polarity"):
        load_splits(DataConfig(source="cornell-movie-review-data/rotten_tomatoes"))
