"""The Typer app of the ``sentiment`` command, the arguments several commands share, and
``main`` (one-line errors, exit code 2 for bad input)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from sentiment_hf.errors import SentimentError

#: Arguments several commands take, defined once.
RunDirArg = Annotated[Path, typer.Argument(help="A run directory written by `sentiment train`.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Inference batch size.")]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the full JSON instead of the summary table.")
]
app = typer.Typer(
    name="sentiment",
    help="Fine-tune, sweep, evaluate, export, serve and ship transformer sentiment classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # docstrings are wrapped at 100 columns: markdown reflows each paragraph to the terminal
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"sentiment-hf {version('sentiment-hf')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options of ``sentiment`` itself (the app's help text is the one above)."""


Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Dotted KEY=VALUE overrides typed by the recipe schema, e.g. "
        "training.learning_rate=3e-5 data.max_train_samples=500 "
        "data.source=../shared/data/rt-polarity",
        show_default=False,
    ),
]


def main() -> None:
    """Console-script entry point: one-line errors with exit code 2 for bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except SentimentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
