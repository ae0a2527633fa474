"""Files as people have them: BOM, CRLF, quoted newlines, cp1252, TSV, and the bad ones, each
with one `error:` line (exit 2) through the CLI and nothing written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_inprocess import run_main
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data.load import load_splits
from sentiment_hf.errors import SentimentError

BASE = str(REPO / "recipes" / "base.yaml")
ROWS = [("a gorgeous film", "pos"), ("a dull mess", "neg")] * 6


def _csv(rows: list[tuple[str, str]], header: str = "text,label", newline: str = "\n") -> str:
    lines = [header] + [f'"{t}",{label}' for t, label in rows]
    return newline.join(lines) + newline


def test_bom_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    rows = [("first line\r\nsecond line, with a comma", "pos"), ('say "no"', "neg")]
    body = _csv(rows, newline="\r\n").replace('"say "no""', '"say ""no"""')
    for split in ("train", "validation", "test"):
        (folder / f"{split}.csv").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    data = load_splits(DataConfig(source=str(folder)))
    assert data.splits["test"]["text"] == ["first line\nsecond line, with a comma", 'say "no"']
    assert data.splits["test"]["label"] == [1, 0]  # names sorted: neg, pos
    assert data.label_names == ["neg", "pos"]


def test_cp1252_is_detected_and_encoding_can_be_forced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "win.csv"
    rows = [("café \u2013 très bien", "pos"), ("naïve \u2014 awful", "neg")] * 5
    path.write_bytes(_csv(rows).encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="sentiment_hf.data.readers"):
        data = load_splits(DataConfig(source=str(path)), splits=("train",), whole_file=True)
    assert data.splits["train"]["text"][:2] == ["café \u2013 très bien", "naïve \u2014 awful"]
    assert "is not UTF-8" in caplog.text and "read as cp1252" in caplog.text
    forced = load_splits(
        DataConfig(source=str(path), encoding="latin-1"), splits=("train",), whole_file=True
    )
    assert forced.splits["train"]["text"][0] == "café \x96 très bien"
    with pytest.raises(SentimentError, match=r"is not valid utf-8 .*set data.encoding"):
        load_splits(DataConfig(source=str(path), encoding="utf-8"), splits=("train",))


def test_tsv_folder_with_integer_labels(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    body = "sentence\tlabel\n" + "".join(f"it is, {i}\t{i % 2}\n" for i in range(6))
    for split in ("train", "validation", "test"):
        (folder / f"{split}.tsv").write_text(body)
    data = load_splits(DataConfig(source=str(folder), text_column="sentence"))
    assert data.label_names == ["0", "1"]
    assert data.splits["train"]["text"][1] == "it is, 1"
    assert data.splits["train"]["label"] == [0, 1, 0, 1, 0, 1]


BAD_FILES = {
    "ragged": ("text,label\ngood,pos\nbad,neg,extra\n", "could not parse", "double quotes"),
    "header_only": ("text,label\n", "has no rows (only a header: text, label)", "needs examples"),
    "empty": ("", "is empty", "header row"),
    "no_label_column": (_csv(ROWS, "text,sentiment"), "no column 'label'", "data.label_column"),
    "no_text_column": (_csv(ROWS, "review,label"), "no column 'text'", "data.text_column"),
    "empty_text_cell": (_csv(ROWS) + ",pos\n", "'text' cell is empty", "fill it or drop"),
    "empty_label_cell": (_csv(ROWS) + "fine film,\n", "'label' cell is empty", "drop it"),
    "too_small": ("text,label\ngood,pos\nbad,neg\n", "has only 1 example(s)", "at least 3"),
    "tabs_in_csv": ("text\tlabel\ngood\tpos\n", "looks tab-separated", "name it .tsv"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_one_error_line_and_nothing_written(
    case: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body, problem, fix = BAD_FILES[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(body)
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    result = run_main(
        ["train", BASE, *tiny_recipe_overrides(tiny_backbone, path, run_dir)], capsys, monkeypatch
    )
    assert result.code == 2, result
    assert len(result.error_lines) == 1, result.stderr
    assert problem in result.error_lines[0] and fix in result.error_lines[0], result.error_lines
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_eval_on_a_folder_with_only_test_and_on_one_file(
    tiny_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    (only_test / "test.csv").write_text(_csv(ROWS[:3]))
    common = ["--no-explain", "--json", "--output"]
    result = run_main(
        ["eval", str(tiny_run), "--data", str(only_test), *common, str(tmp_path / "r1")],
        capsys,
        monkeypatch,
    )
    assert result.code == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test_samples"] == 3

    one_file = tmp_path / "reviews.tsv"
    one_file.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in ROWS[:7]))
    result = run_main(
        ["eval", str(tiny_run), "--data", str(one_file), *common, str(tmp_path / "r2")],
        capsys,
        monkeypatch,
    )
    assert result.code == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test_samples"] == 7  # the whole file, not a cut of it

    bad = tmp_path / "bad.csv"
    bad.write_text(_csv(ROWS[:3]) + ",neg\n")
    result = run_main(
        ["eval", str(tiny_run), "--data", str(bad), *common, str(tmp_path / "r3")],
        capsys,
        monkeypatch,
    )
    assert result.code == 2 and len(result.error_lines) == 1, result.stderr
    assert "test row 3: the 'text' cell is empty" in result.error_lines[0]
    assert not (tmp_path / "r3").exists()
