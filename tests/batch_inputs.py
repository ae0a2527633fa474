"""The input files of the batch-prediction tests: the same rows in every input format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

N_TEXTS = 45
BLANK_AT = 10  # a blank row: its index is kept, no output row


def write_inputs(texts: list[str], folder: Path) -> dict[str, Path]:
    """The same rows as .txt, .csv, .tsv, .jsonl and .parquet (row BLANK_AT blank)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [("" if i == BLANK_AT else t) for i, t in enumerate(texts)]
    folder.mkdir(exist_ok=True)
    paths = {s: folder / f"in{s}" for s in (".txt", ".csv", ".tsv", ".jsonl", ".parquet")}
    flat = [r.replace("\n", " ") for r in rows]  # a .txt line cannot hold a newline
    paths[".txt"].write_text("\n".join(flat) + "\n", encoding="utf-8")
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        with open(paths[suffix], "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=sep)
            writer.writerow(["id", "review"])
            writer.writerows([i, r] for i, r in enumerate(rows))  # row 3: a quoted newline
    with open(paths[".jsonl"], "w", encoding="utf-8") as handle:
        for i, r in enumerate(rows):
            handle.write(json.dumps({"id": i, "review": r}) + "\n")
    pq.write_table(pa.table({"review": rows}), paths[".parquet"])
    return paths


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
