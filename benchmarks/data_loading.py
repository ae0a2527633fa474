"""Loading a big CSV: load + validate + fingerprint, then tokenize, time and peak RSS.

    uv run python benchmarks/data_loading.py make /tmp/reviews-1m.csv --rows 1000000
    git archive 3b58fa5 sentiment_hf | tar -x -C /tmp/arrowdata-base     # the code BEFORE
    flock /tmp/sentiment_cpu.lock uv run python benchmarks/data_loading.py run \\
        /tmp/reviews-1m.csv --code before=/tmp/arrowdata-base --code after=. --rep 1 \\
        --out /tmp/data-loading.jsonl
    uv run python benchmarks/data_loading.py table /tmp/data-loading.jsonl

``make`` writes ``--rows`` rows of ``text,label`` drawn with replacement (numpy seed
``--seed``) from the 10,662 rt-polarity sentences (all three hub splits), the label the sentence's
class name (``neg``/``pos``), so the label column is mapped by name. ``run`` starts one fresh
process per ``--code`` variant (``NAME=DIR``: ``DIR`` on ``PYTHONPATH`` ahead of the installed
package, so ``DIR/sentiment_hf`` is the code measured), in the given order, or reversed for even
``--rep`` (interleaving); each loads the file as a single-file source (``load_splits``: read,
cut train/validation/test stratified with seed 42, validate, map labels, fingerprint) and then
tokenizes every split (``tokenize_splits``, the default MiniLM tokenizer, ``max_length`` 64, a
fresh cache directory). Peak RSS is ``ru_maxrss`` of that process (and of its ``num_proc``
workers, reported apart). Row counts, label sums and a checksum of every split's texts, labels
and token ids are printed, so the variants can be compared for equal results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rt-polarity"


def make(out: Path, rows: int, seed: int, rt_dir: Path) -> None:
    """Write the synthetic CSV (see the module docstring)."""
    import numpy as np
    import pandas as pd

    from sentiment_hf.data.load import read_rt_polarity

    splits = read_rt_polarity(rt_dir)
    texts = [t for ds in splits.values() for t in ds["text"]]
    labels = [["neg", "pos"][y] for ds in splits.values() for y in ds["label"]]
    pick = np.random.default_rng(seed).integers(0, len(texts), size=rows)
    frame = pd.DataFrame(
        {"text": np.array(texts, dtype=object)[pick], "label": np.array(labels)[pick]}
    )
    frame.to_csv(out, index=False)
    print(f"wrote {rows:,} rows to {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _checksum(dd: Any, columns: list[str]) -> str:
    digest = hashlib.sha256()
    for split in sorted(dd):
        table = dd[split].with_format("arrow")[:]
        for name in columns:
            if name in table.column_names:
                column = table.column(name)
                for start in range(0, len(column), 100_000):  # bounded lists, after the timing
                    digest.update(repr(column.slice(start, 100_000).to_pylist()).encode())
    return digest.hexdigest()[:16]


def child(csv_path: Path, num_proc: int | None, datacheck: bool = False) -> dict[str, Any]:
    """One measurement in this process: load, then tokenize (see the module docstring)."""
    import inspect

    import sentiment_hf
    from sentiment_hf.config.recipe import DataConfig, ModelConfig
    from sentiment_hf.data.load import load_splits
    from sentiment_hf.data.tokenize import tokenize_splits
    from sentiment_hf.datacheck import load_tokenizer

    model = ModelConfig()
    tokenizer = load_tokenizer(model)
    t0 = time.perf_counter()
    data = load_splits(DataConfig(source=str(csv_path)), seed=42)
    t1 = time.perf_counter()
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kwargs = {}
    if "num_proc" in inspect.signature(tokenize_splits).parameters:
        kwargs["num_proc"] = num_proc
    with tempfile.TemporaryDirectory() as cache:
        t2 = time.perf_counter()
        tokenized = tokenize_splits(data, tokenizer, model.max_length, cache_dir=cache, **kwargs)
        t3 = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result = {
            "code": str(Path(sentiment_hf.__file__).parent),
            "rows": {s: len(ds) for s, ds in data.splits.items()},
            "label_sums": {s: int(sum(ds["label"])) for s, ds in data.splits.items()},
            "fingerprint": data.fingerprint,
            "load_s": t1 - t0,
            "tokenize_s": t3 - t2,
            "total_s": t3 - t0,
            "peak_rss_load_mib": rss_load,
            "peak_rss_mib": rss,
            "peak_rss_workers_mib": rss_children,
            "data_checksum": _checksum(data.splits, ["text", "label"]),
            "token_checksum": _checksum(tokenized, ["input_ids", "label"]),
            "tokenize_kwargs": kwargs,
        }
    if datacheck:  # the train-start data check, timed after the figures above were taken
        from sentiment_hf.datacheck import check_loaded

        t4 = time.perf_counter()
        check_loaded(data, tokenizer, model.max_length)
        result["datacheck_s"] = time.perf_counter() - t4
        result["peak_rss_with_datacheck_mib"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
    return result


def run(
    csv_path: Path,
    codes: list[str],
    rep: int,
    out: Path,
    num_proc: int | None,
    datacheck: bool = False,
) -> None:
    """One repetition: a fresh process per code variant, results appended to ``out``."""
    order = codes if rep % 2 else list(reversed(codes))
    for spec in order:
        name, _, directory = spec.partition("=")
        env = dict(os.environ, PYTHONPATH=str(Path(directory).resolve()))
        cmd = [sys.executable, __file__, "child", str(csv_path)]
        if num_proc is not None:
            cmd += ["--num-proc", str(num_proc)]
        if datacheck:
            cmd.append("--datacheck")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"{name}: exit {proc.returncode}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(variant=name, rep=rep, csv=str(csv_path))
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")
        print(
            f"rep {rep} {name}: load {result['load_s']:.1f} s, "
            f"tokenize {result['tokenize_s']:.1f} s, "
            f"total {result['total_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB "
            f"(workers {result['peak_rss_workers_mib']:.0f}), rows {result['rows']}, "
            f"data {result['data_checksum']}, tokens {result['token_checksum']}"
            + (f", data check {result['datacheck_s']:.1f} s" if datacheck else ""),
            flush=True,
        )


def table(path: Path) -> None:
    """The per-repetition table of a results file, as Markdown."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    print(
        "| code | rep | load + validate (s) | tokenize (s) | total (s) | peak RSS (MiB) | "
        "worker peak RSS (MiB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(rows, key=lambda r: (r.get("csv", ""), r["variant"], r["rep"])):
        print(
            f"| {Path(r.get('csv', '')).name} {r['variant']} | {r['rep']} | {r['load_s']:.1f} | "
            f"{r['tokenize_s']:.1f} | "
            f"{r['total_s']:.1f} | {r['peak_rss_mib']:,.0f} | {r['peak_rss_workers_mib']:,.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make")
    p.add_argument("out", type=Path)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rt-dir", type=Path, default=RT_DIR)
    p = sub.add_parser("run")
    p.add_argument("csv", type=Path)
    p.add_argument("--code", action="append", required=True, help="NAME=DIR (repeatable)")
    p.add_argument("--rep", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-proc", type=int, default=None)
    p.add_argument("--datacheck", action="store_true", help="also time the data check")
    p = sub.add_parser("child")
    p.add_argument("csv", type=Path)
    p.add_argument("--num-proc", type=int, default=None)
    p.add_argument("--datacheck", action="store_true")
    p = sub.add_parser("table")
    p.add_argument("results", type=Path)
    args = parser.parse_args()
    if args.cmd == "make":
        make(args.out, args.rows, args.seed, args.rt_dir)
    elif args.cmd == "run":
        run(args.csv, args.code, args.rep, args.out, args.num_proc, args.datacheck)
    elif args.cmd == "child":
        print(json.dumps(child(args.csv, args.num_proc, args.datacheck)))
    else:
        table(args.results)


if __name__ == "__main__":
    main()
