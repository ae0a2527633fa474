"""The data check: what it finds, which findings are errors, the CLI, and the training gate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_inprocess import run_main
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf.config.recipe import ModelConfig, load_recipe
from sentiment_hf.datacheck import check_splits, load_tokenizer
from sentiment_hf.datacheck.checks import normalize_text

BASE = str(REPO / "recipes" / "base.yaml")


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone: Path):
    return load_tokenizer(ModelConfig(backbone=str(tiny_backbone)))


def _codes(report) -> list[tuple[str, str, int]]:
    return sorted((f.severity, f.code, f.count) for f in report.findings)


def test_findings_and_their_severity(tokenizer) -> None:
    train_texts = ["a fine film", "a fine film", "Dull, DULL.", "leaked text", "same words"]
    train_texts += [None, "   ", "long " * 40, "dull dull"]
    splits = {
        "train": (train_texts, ["pos", "pos", "neg", "pos", "pos", "neg", "pos", "neg", "neg"]),
        "validation": (["good", "bad"], ["pos", "neg"]),
        "test": (
            ["leaked text", "SAME words!!", "conflict", "conflict", "bad."],
            ["pos", "pos", "pos", "neg", "pos"],
        ),
    }
    report = check_splits(splits, tokenizer, max_length=16, source="mem")
    assert _codes(report) == [
        ("error", "conflicting_labels", 1),  # "conflict": pos and neg
        ("error", "empty_text", 2),  # None and whitespace
        ("error", "leakage", 1),  # "leaked text" in train and test
        ("warning", "duplicate", 1),  # "a fine film" twice in train
        ("warning", "duplicate", 1),  # "conflict" twice in test
        ("warning", "near_conflicting_labels", 1),  # "bad" neg / "bad." pos
        ("warning", "near_duplicate", 1),  # "Dull, DULL." ~ "dull dull"
        ("warning", "near_leakage", 1),  # test "SAME words!!" ~ train "same words"
        ("warning", "near_leakage", 1),  # test "bad." ~ validation "bad"
        ("warning", "truncation", 1),  # one train text of 42 tokens > 16
    ]
    assert [f.severity for f in report.findings[:3]] == ["error"] * 3  # errors first
    leak = next(f for f in report.findings if f.code == "leakage")
    assert leak.examples == ["leaked text"] and "test text(s) also in train" in leak.message
    conflict = next(f for f in report.findings if f.code == "conflicting_labels")
    assert conflict.examples == ["conflict -> neg/pos"]
    empty = next(f for f in report.findings if f.code == "empty_text")
    assert "rows 5, 6" in empty.message
    assert report.splits["train"].labels == {"neg": 4, "pos": 5}
    assert report.splits["train"].truncated == 1
    assert report.splits["test"].rows == 5
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["errors"] == 3 and payload["warnings"] == 7


def test_token_lengths_balance_and_label_names(tokenizer) -> None:
    texts = ["good " * k for k in range(1, 11)]
    labels = [1] * 9 + [0]
    splits = {"train": (texts, labels), "validation": (["fine"], [1])}
    report = check_splits(splits, tokenizer, max_length=8, label_names=["neg", "pos"])
    train = report.splits["train"]
    assert train.tokens["p50"] == 7.5  # lengths 3..12 ([CLS] + k + [SEP])
    assert train.tokens["max"] == 12
    assert train.truncated == 4 and train.truncated_share == 0.4
    assert train.labels == {"neg": 1, "pos": 9}
    codes = {f.code: f for f in report.findings}
    assert set(codes) == {"truncation", "class_missing"}  # 10 % is not under the 10 % bar
    assert "validation has no example of neg" in codes["class_missing"].message
    skewed = check_splits({"train": ([*texts, "x y"], [*labels, 1])}, tokenizer, 64, ["neg", "pos"])
    assert [f.code for f in skewed.findings] == ["imbalance"]
    assert "class 'neg' is 9.1% of train" in skewed.findings[0].message


def test_normalised_text() -> None:
    assert normalize_text("  It's   GREAT!!\n") == "it s great"
    assert normalize_text("\uff26\uff35\uff2c\uff2c width") == "full width"  # NFKC


def _folder(root: Path, rows: dict[str, list[tuple[str, str]]]) -> Path:
    root.mkdir()
    for split, items in rows.items():
        body = "text,label\n" + "".join(f'"{t}",{label}\n' for t, label in items)
        (root / f"{split}.csv").write_text(body)
    return root


TRAIN = [(f"good film {i}", "pos") for i in range(8)] + [(f"bad film {i}", "neg") for i in range(8)]
CLEAN = {"train": TRAIN, "validation": [("nice", "pos"), ("awful", "neg")]}
CLEAN["test"] = [("lovely", "pos"), ("boring", "neg")]
LEAKY = {**CLEAN, "test": [("good film 3", "pos"), ("boring", "neg")]}


def test_cli_table_json_and_exit_codes(
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opts = ["--backbone", str(tiny_backbone), "--max-length", "8"]
    clean = _folder(tmp_path / "clean", CLEAN)
    result = run_main(["data", "check", str(clean), *opts], capsys, monkeypatch)
    assert result.code == 0, result.stderr
    assert "no problems found" in result.stdout and "validation" in result.stdout

    leaky = _folder(tmp_path / "leaky", LEAKY)
    result = run_main(["data", "check", str(leaky), *opts, "--json"], capsys, monkeypatch)
    assert result.code == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["errors"] == 1 and payload["findings"][0]["code"] == "leakage"
    assert payload["splits"]["test"]["labels"] == {"neg": 1, "pos": 1}
    table = run_main(["data", "check", str(leaky), *opts], capsys, monkeypatch)
    assert table.code == 1 and "1 error(s)" in table.stdout and "good film 3" in table.stdout

    holes = tmp_path / "holes.csv"
    holes.write_text("review,stars\n" + "".join(f"r {i},{i % 2}\n" for i in range(20)) + ",1\n")
    cols = ["--text-column", "review", "--label-column", "stars"]
    result = run_main(["data", "check", str(holes), *opts, *cols, "--json"], capsys, monkeypatch)
    assert result.code == 1, result.stderr  # an empty cell is a finding here, not a stop
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == ["empty_text"]

    missing = run_main(["data", "check", str(tmp_path / "nope.csv"), *opts], capsys, monkeypatch)
    assert missing.code == 2 and len(missing.error_lines) == 1
    assert "does not exist" in missing.error_lines[0]


def test_training_stops_on_errors_and_warn_lets_it_through(
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaky = _folder(tmp_path / "leaky", LEAKY)
    run_dir = tmp_path / "run"
    overrides = tiny_recipe_overrides(tiny_backbone, leaky, run_dir)
    result = run_main(["train", BASE, *overrides], capsys, monkeypatch)
    assert result.code == 2 and len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert "data check found 1 error(s): 1 test text(s) also in train" in line
    assert f"sentiment data check {leaky}" in line and "data.check=warn" in line
    assert not run_dir.exists()

    from sentiment_hf.training.train import build_training_args, prepare

    for mode, logged in (("warn", True), ("skip", False)):
        recipe = load_recipe(BASE, [*overrides, f"data.check={mode}"])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sentiment_hf.datacheck"):
            prepared = prepare(recipe, build_training_args(recipe))
        assert len(prepared.tokenized["test"]) == 2
        assert ("data check: error: 1 test text(s) also in train" in caplog.text) is logged
