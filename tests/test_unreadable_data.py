"""Data files that cannot be read as a table of one type per column: a JSONL label or text
column that mixes JSON types, a file that cannot be opened, a directory or FIFO where a file
belongs, bytes that are not the declared encoding, a binary file.

``data check`` and ``train`` read through the same loader and must each give one ``error:`` line
that names the file, the problem and the fix, exit 2 (never 1: for ``data check`` 1 means
"findings") and write nothing."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_inprocess import Outcome, run_main
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data.load import load_splits

BASE = str(REPO / "recipes" / "base.yaml")
COMMANDS = ("data check", "train")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rows(n: int = 20) -> list[dict]:
    return [{"text": f"{'good' if i % 2 else 'bad'} film {i}", "label": i % 2} for i in range(n)]


def _sentiment(
    command: str,
    source: Path,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    encoding: str | None = None,
) -> Outcome:
    """``sentiment data check SOURCE`` or ``sentiment train base.yaml data.source=SOURCE``,
    run from ``tmp_path``; asserts that nothing was written there."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    if command == "train":
        args = ["train", BASE, *tiny_recipe_overrides(tiny_backbone, source, tmp_path / "run")]
        args += [f"data.encoding={encoding}"] if encoding else []
    else:
        args = ["data", "check", str(source), "--backbone", str(tiny_backbone)]
        args += ["--max-length", "16", *(["--encoding", encoding] if encoding else [])]
    result = run_main(args, capsys, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"
    return result


def _one_error_line(result: Outcome) -> str:
    assert result.code == 2, (result.code, result.stderr[-3000:])
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.error_lines[0]


# ------------------------------------------------------------------ mixed JSON types
def _mixed_label_file(tmp_path: Path) -> tuple[Path, Path, str]:
    rows = _rows(10) + [{"text": f"film {i}", "label": "neg"} for i in range(10)]
    path = _jsonl(tmp_path / "reviews.jsonl", rows)
    return path, path, "label"


def _mixed_label_folder(tmp_path: Path) -> tuple[Path, Path, str]:
    folder = tmp_path / "splits"
    folder.mkdir()
    for split in ("train", "test"):
        _jsonl(folder / f"{split}.jsonl", _rows())
    rows = [*_rows(10), {"text": "a fine film", "label": "pos"}, *_rows(5)]
    return folder, _jsonl(folder / "validation.jsonl", rows), "label"


def _mixed_text_file(tmp_path: Path) -> tuple[Path, Path, str]:
    rows = _rows()
    rows[10]["text"] = 7
    path = _jsonl(tmp_path / "reviews.jsonl", rows)
    return path, path, "text"


MIXED = {
    "label_in_one_file": (_mixed_label_file, "integer", "string"),
    "label_in_a_folder": (_mixed_label_folder, "integer", "string"),
    "text_in_one_file": (_mixed_text_file, "string", "integer"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(MIXED))
def test_a_column_of_mixed_json_types_is_one_error_line(
    case: str,
    command: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make, first_type, other_type = MIXED[case]
    source, bad_file, column = make(tmp_path)
    line = _one_error_line(
        _sentiment(command, source, tmp_path, tiny_backbone, capsys, monkeypatch)
    )
    assert str(bad_file) in line and f"column {column!r}" in line, line
    assert f"mixes {first_type} and {other_type} values" in line, line
    assert f"row 10 is {'an' if other_type == 'integer' else 'a'} {other_type}" in line, line
    assert "one type" in line, line


# ------------------------------------------------------------------ files that cannot be read
def _libc_caps() -> tuple[ctypes.CDLL, ctypes.Structure, ctypes.Array]:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip(f"capget failed (errno {ctypes.get_errno()})")
    return libc, header, data


@contextlib.contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """``path`` with mode 000, so that opening it fails with EACCES for this thread.

    Root reads any file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (CI may run as root):
    then those two are dropped from this thread's effective set for the block and raised again
    from the permitted set after it, so the kernel refuses the read as it would for a user."""
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            yield
            return
        libc, header, data = _libc_caps()
        saved = data[0].effective
        data[0].effective &= ~((1 << 1) | (1 << 2))  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.capset(ctypes.byref(header), data) != 0:
            pytest.skip(f"capset failed (errno {ctypes.get_errno()}): root cannot drop DAC caps")
        try:
            with pytest.raises(PermissionError):
                path.read_bytes()  # the premise: the file really is unreadable now
            yield
        finally:
            data[0].effective = saved
            assert libc.capset(ctypes.byref(header), data) == 0
    finally:
        path.chmod(0o644)


def _csv_text() -> str:
    return "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in _rows())


def _folder_with(tmp_path: Path, validation: str) -> Path:
    folder = tmp_path / "splits"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.csv").write_text(_csv_text())
    if validation == "directory":
        (folder / "validation.csv").mkdir()
    elif validation == "broken link":
        (folder / "validation.csv").symlink_to(tmp_path / "moved.csv")
    else:
        os.mkfifo(folder / "validation.csv")
    return folder


@pytest.mark.linux_only  # chmod does not stop reads on Windows; capset is Linux's
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_without_read_permission_is_one_error_line(
    suffix: str,
    command: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        path.write_text(_csv_text())
    else:
        _jsonl(path, _rows())
    with _unreadable(path):
        result = _sentiment(command, path, tmp_path, tiny_backbone, capsys, monkeypatch)
    line = _one_error_line(result)
    assert f"cannot read {str(path)!r}: permission denied" in line, line
    assert "make it readable" in line, line


#: A single-file source or a split file that is no file: (make source, bad path, words).
NOT_A_FILE = {
    "fifo_as_the_source": (
        lambda tmp: (os.mkfifo(tmp / "reviews.csv"), tmp / "reviews.csv")[1],
        "reviews.csv",
        "is a FIFO, not a regular file",
    ),
    "directory_as_a_split_file": (
        lambda tmp: _folder_with(tmp, "directory"),
        "splits/validation.csv",
        "is a directory, not a data file",
    ),
    "broken_link_as_a_split_file": (
        lambda tmp: _folder_with(tmp, "broken link"),
        "splits/validation.csv",
        "moved.csv', which does not exist; fix the link",
    ),
    "fifo_as_a_split_file": (
        lambda tmp: _folder_with(tmp, "fifo"),
        "splits/validation.csv",
        "is a FIFO, not a regular file",
    ),
}


@pytest.mark.linux_only  # os.mkfifo, symlinks
@pytest.mark.timeout(120)  # before the fix a FIFO blocked the read forever
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(NOT_A_FILE))
def test_a_path_that_is_no_regular_file_is_one_error_line(
    case: str,
    command: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make, bad, words = NOT_A_FILE[case]
    source = make(tmp_path)
    line = _one_error_line(
        _sentiment(command, source, tmp_path, tiny_backbone, capsys, monkeypatch)
    )
    assert repr(str(tmp_path / bad)) in line and words in line, line


def _binary(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"data{suffix}"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _utf16(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"data{suffix}"
    path.write_text(_csv_text(), encoding="utf-16")
    return path


def _cp1252_jsonl(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"data{suffix}"
    rows = [{"text": f"caf\u00e9 \u2013 {r['text']}", "label": r["label"]} for r in _rows()]
    path.write_bytes(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("cp1252")
    )
    return path


#: (file maker, suffix, declared data.encoding, words the error holds).
UNDECODABLE = {
    "binary_csv": (_binary, ".csv", None, "holds NUL bytes (the first at offset 0)"),
    "binary_jsonl": (_binary, ".jsonl", None, "holds NUL bytes (the first at offset 0)"),
    "utf16_csv_undeclared": (_utf16, ".csv", None, "set data.encoding (e.g. utf-16)"),
    "cp1252_jsonl_declared_utf8": (
        _cp1252_jsonl,
        ".jsonl",
        "utf-8",
        "is not valid utf-8 (byte 0xe9 at offset 13); set data.encoding",
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_bytes_that_are_no_text_of_the_encoding_are_one_error_line(
    case: str,
    command: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make, suffix, encoding, words = UNDECODABLE[case]
    path = make(tmp_path, suffix)
    result = _sentiment(command, path, tmp_path, tiny_backbone, capsys, monkeypatch, encoding)
    line = _one_error_line(result)
    assert repr(str(path)) in line and words in line, line


def test_jsonl_is_decoded_like_csv(tmp_path: Path) -> None:
    """One decode policy: a cp1252 JSONL is read as cp1252 (with the warning), or as the
    declared data.encoding; before, its bytes reached Arrow unchecked and crashed later."""
    path = _cp1252_jsonl(tmp_path, ".jsonl")
    data = load_splits(DataConfig(source=str(path)), splits=("train",), whole_file=True)
    assert data.splits["train"]["text"][0] == "caf\u00e9 \u2013 bad film 0"
    forced = load_splits(
        DataConfig(source=str(path), encoding="latin-1"), splits=("train",), whole_file=True
    )
    assert forced.splits["train"]["text"][0] == "caf\u00e9 \x96 bad film 0"


#: Label columns of one type that is no label type: (row 0's label, how the error names it).
ODD_LABELS = {
    "object": ({"v": 1}, "object"),
    "decimal": (0.5, "number"),
    "boolean": (True, "boolean"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(ODD_LABELS))
def test_a_label_column_of_no_label_type_is_one_error_line(
    case: str,
    command: str,
    tmp_path: Path,
    tiny_backbone: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Objects crashed Arrow's dictionary_encode; numbers and booleans were said to "mix
    types" though every row held the same type."""
    value, kind = ODD_LABELS[case]
    rows = [{"text": f"film {i}", "label": value} for i in range(20)]
    path = _jsonl(tmp_path / "reviews.jsonl", rows)
    line = _one_error_line(_sentiment(command, path, tmp_path, tiny_backbone, capsys, monkeypatch))
    assert str(path) in line and f"column 'label' holds {kind} values" in line, line
    assert f"row 0 is {json.dumps(value)}" in line, line
    assert 'class names (e.g. "neg"/"pos") or integers 0..N-1' in line, line
