"""``sentiment data check SOURCE``: the data check as a table (or JSON), exit 1 on errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sentiment_hf.cli.app import app

if TYPE_CHECKING:
    from sentiment_hf.datacheck import DataReport

data_app = typer.Typer(help="Look at a data source before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Like data.source: a folder of split files, one CSV/TSV/JSONL/parquet file, "
            "the rt-polarity folder or a hub id (default: the recipe's).",
            show_default=False,
        ),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(help="Take the data and model sections (columns, backbone) from a recipe."),
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="data.text_column.")] = None,
    label_column: Annotated[str | None, typer.Option(help="data.label_column.")] = None,
    encoding: Annotated[str | None, typer.Option(help="data.encoding of CSV/TSV files.")] = None,
    backbone: Annotated[
        str | None, typer.Option(help="Tokenizer that measures lengths (model.backbone).")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(min=1, help="Token budget whose truncation share is reported.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed that cuts a single file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a data source: leakage, duplicates, conflicting labels, empty texts, lengths.

    Exact and normalised (case, punctuation, spaces) duplicates within and across splits,
    labels per split, token-length percentiles and the share max_length truncates. Errors
    (leakage, conflicting labels, empty texts, missing labels) make the exit code 1; see
    docs/data.md.
    """
    from sentiment_hf.config.recipe import Recipe, load_recipe
    from sentiment_hf.datacheck import check_source, load_tokenizer

    cfg = load_recipe(recipe) if recipe else Recipe()
    data, model = dataclasses.replace(cfg.data), dataclasses.replace(cfg.model)
    for key, value in (
        ("source", source),
        ("text_column", text_column),
        ("label_column", label_column),
        ("encoding", encoding),
    ):
        if value is not None:
            setattr(data, key, value)
    if backbone is not None:
        model.backbone = backbone
    if max_length is not None:
        model.max_length = max_length
    tokenizer = load_tokenizer(model)
    report = check_source(
        data, tokenizer, model.max_length, seed if seed is not None else cfg.training["seed"]
    )
    report.tokenizer = model.backbone
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render(report)
    if report.errors:
        raise typer.Exit(1)


def render(report: DataReport) -> None:
    """The report as two rich tables: the splits, then the findings."""
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    splits = Table(
        title=f"data check: {report.source} (tokens by {report.tokenizer}, max_length "
        f"{report.max_length})"
    )
    for name in ("split", "rows", "labels", "p50", "p90", "p95", "p99", "max", "truncated"):
        splits.add_column(name, justify="left" if name in ("split", "labels") else "right")
    for split, s in report.splits.items():
        labels = "\n".join(f"{k} {v} ({v / max(s.rows, 1):.0%})" for k, v in s.labels.items())
        splits.add_row(
            split,
            str(s.rows),
            labels,
            *(f"{s.tokens[k]:.0f}" for k in ("p50", "p90", "p95", "p99", "max")),
            f"{s.truncated} ({s.truncated_share:.1%})",
        )
    console.print(splits)
    if not report.findings:
        console.print("no problems found")
        return
    findings = Table(title=f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    for name in ("severity", "finding", "examples"):
        findings.add_column(name)
    for f in report.findings:
        colour = "red" if f.severity == "error" else "yellow"
        findings.add_row(f"[{colour}]{f.severity}[/]", f.message, "\n".join(f.examples))
    console.print(findings)
