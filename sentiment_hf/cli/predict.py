"""``sentiment predict``: a few texts to stdout, or a big file streamed into an output file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sentiment_hf.cli.app import BatchSize, RunDirArg, app
from sentiment_hf.errors import SentimentError
from sentiment_hf.inference.batch import DEFAULT_CHUNK_SIZE

if TYPE_CHECKING:
    from sentiment_hf.inference.batch import BatchResult
    from sentiment_hf.longtext import LongTextCounts

#: Where ``predict --file IN --output OUT`` runs.
ENGINES = ("local", "ray")

#: The options of ``sentiment predict``, declared once here so the command reads as its steps.
Texts = Annotated[
    list[str] | None,
    typer.Argument(help="Texts to classify; none reads --file or stdin.", show_default=False),
]
InputFile = Annotated[
    str | None,
    typer.Option(
        "--file",
        "-f",
        help="Read the texts of this file: .txt (one per line), .csv, .tsv, .jsonl or "
        ".parquet (the text in --text-column); blank rows are skipped. With --engine ray "
        "also an fsspec URL (gs://bucket/reviews.csv).",
        show_default=False,
    ),
]
OutputFile = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Stream --file into this .jsonl, .csv or .parquet file in chunks: constant "
        "memory, a progress bar, resumable by rerunning the same command (--engine local), "
        "or scored on Ray (--engine ray; a local path or an fsspec URL).",
        show_default=False,
    ),
]
Engine = Annotated[
    str,
    typer.Option(
        help="--output: 'local' (this process, resumable) or 'ray' (Ray Data: a pool of "
        "actors on this machine, or on the cluster at --address; needs sentiment-hf[ray]).",
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        help="--engine ray: the Ray cluster to join ('auto', HOST:PORT or ray://HOST:10001); "
        "default: start one on this machine's cores for the job.",
        show_default=False,
    ),
]
Actors = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="--engine ray: model replicas (actors), each with --cpus-per-actor threads "
        "(default: the cluster's CPUs / --cpus-per-actor).",
        show_default=False,
    ),
]
CpusPerActor = Annotated[
    int, typer.Option(min=1, help="--engine ray: CPUs (threads) each actor reserves.")
]
StorageOption = Annotated[
    list[str] | None,
    typer.Option(
        help="--engine ray: KEY=VALUE passed to fsspec for URLs (repeatable), e.g. "
        "token=anon or endpoint_url=http://127.0.0.1:9023.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON lines.")]
Backend = Annotated[
    str | None,
    typer.Option(
        help="Inference backend: torch, onnx or onnx-int8 (default torch; with --output "
        "the fastest the run has: onnx-int8, onnx, then torch).",
        show_default=False,
    ),
]
TextColumn = Annotated[
    str | None,
    typer.Option(help="--file: the text column or field (default the run's data.text_column)."),
]
ChunkSize = Annotated[
    int, typer.Option(min=1, help="--output: rows per chunk (the unit of resuming).")
]
IncludeText = Annotated[
    bool, typer.Option("--text/--no-text", help="--output: copy each text into its row.")
]
Encoding = Annotated[
    str | None,
    typer.Option(
        help="--file: the input's text encoding (default: UTF-8, else cp1252 with a "
        "warning, as for training data).",
        show_default=False,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="--output: replace OUT and discard parts left by another input, model or options.",
    ),
]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="--output: progress bar with rate and ETA (default: when stderr is a terminal).",
        show_default=False,
    ),
]


@app.command()
def predict(
    model_dir: RunDirArg,
    texts: Texts = None,
    file: InputFile = None,
    output: OutputFile = None,
    as_json: AsJson = False,
    backend: Backend = None,
    batch_size: BatchSize = 32,
    text_column: TextColumn = None,
    chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    include_text: IncludeText = True,
    encoding: Encoding = None,
    overwrite: Overwrite = False,
    progress: Progress = None,
    engine: Engine = "local",
    address: Address = None,
    actors: Actors = None,
    cpus_per_actor: CpusPerActor = 1,
    storage_option: StorageOption = None,
) -> None:
    """Print the label and probability of each input text, or with --output score a big file.

    A text longer than model.long_text.max_windows windows is read up to its first
    max_windows windows and counted on stderr (the server refuses such a text with 413).

    --file IN --output OUT writes one row per text in input order: index, text, label (labels
    for multi-label runs), score, abstained and per-label probabilities. Finished chunks wait in
    OUT.parts/; rerun the same command after an interruption to continue. --engine ray scores
    the same rows on a Ray cluster (this machine's by default) into the same file.
    """
    if engine not in ENGINES:
        raise SentimentError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
    ray_only = {"--address": address, "--actors": actors, "--storage-option": storage_option}
    if engine != "ray" and (given := [name for name, value in ray_only.items() if value]):
        raise SentimentError(f"{', '.join(given)} go with --engine ray")
    if output is not None:
        if file is None or texts:
            raise SentimentError("--output needs --file IN (and no TEXT arguments)")
        options = {
            "text_column": text_column,
            "chunk_size": chunk_size,
            "backend": backend,
            "batch_size": batch_size,
            "include_text": include_text,
            "encoding": encoding,
            "overwrite": overwrite,
            "progress": progress,
            "announce": lambda line: typer.echo(line, err=True),
        }
        if engine == "ray":
            predict_on_ray = _ray_files().predict_on_ray
            result = predict_on_ray(
                model_dir,
                file,
                output,
                address=address,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                storage_options=_storage_options(storage_option),
                **options,
            )
        else:
            from sentiment_hf.inference.batch import predict_file

            result = predict_file(model_dir, file, output, **options)
        _report_file(model_dir, result)
        return
    if engine != "local":
        raise SentimentError("--engine ray scores a file: give --file IN --output OUT")
    inputs = _input_texts(model_dir, texts, file, text_column, encoding)
    _print_predictions(model_dir, inputs, backend or "torch", batch_size, as_json)


def _ray_files() -> Any:
    """:mod:`sentiment_hf.inference.ray_files`, or one line saying how to install Ray."""
    try:
        from sentiment_hf.inference import ray_files
    except ImportError as exc:
        raise SentimentError(
            f"--engine ray needs Ray ({exc}); install it with pip install 'sentiment-hf[ray]'"
        ) from exc
    return ray_files


def _storage_options(pairs: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` pairs of --storage-option as a dict."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SentimentError(f"--storage-option {pair!r} is not KEY=VALUE, e.g. token=anon")
        options[key] = value
    return options


def _report_file(model_dir: Path, result: BatchResult) -> None:
    """The stderr summary of ``predict --file IN --output OUT``."""
    typer.echo(
        f"wrote {result.output}: {result.rows} texts scored in {result.scored_chunks} chunk(s), "
        f"{result.reused_chunks} reused, {result.blank} blank row(s) skipped, "
        f"{result.seconds:.1f} s ({result.rows_per_s:.0f} texts/s after loading)",
        err=True,
    )
    _note_capped(model_dir, result.long_text)


def _input_texts(
    model_dir: Path,
    texts: list[str] | None,
    file: str | None,
    text_column: str | None,
    encoding: str | None,
) -> list[str]:
    """The TEXT arguments, then the rows of --file; stdin's non-blank lines when both are
    absent and stdin is not a terminal."""
    from sentiment_hf.data.streamio import BLANK_TEXT, is_blank
    from sentiment_hf.inference.batch import open_input
    from sentiment_hf.rundir import open_run

    inputs = list(texts or [])
    for i, text in enumerate(inputs, 1):  # the server's rule: 422 for the same text
        if is_blank(text):
            raise SentimentError(f"TEXT argument {i} is {BLANK_TEXT}")
    if file is not None:  # read as --output reads it; blank rows skipped by the same rule
        reader = open_input(open_run(model_dir), file, text_column, encoding)
        inputs += [text for text in reader if text is not None]
    if not inputs and not sys.stdin.isatty():
        inputs = [line for line in sys.stdin.read().split("\n") if not is_blank(line)]
    if not inputs:
        raise SentimentError(
            "no input texts; pass TEXT arguments, --file FILE or pipe lines on stdin"
        )
    return inputs


def _print_predictions(
    model_dir: Path, inputs: list[str], backend: str, batch_size: int, as_json: bool
) -> None:
    """One line per text on stdout: JSON, or label, score and text separated by tabs."""
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.longtext import LongTextCounts

    predictor = Predictor(model_dir, backend=backend, batch_size=batch_size)
    counts = LongTextCounts()
    for pred in predictor.predict(inputs, counts, strict=False):
        if as_json:
            typer.echo(json.dumps(pred.to_dict(), ensure_ascii=False))
        else:
            # every label given, comma-separated; an abstention prints its label, none: empty
            label = ",".join(pred.labels) or pred.label
            typer.echo(f"{label}\t{pred.score:.4f}\t{pred.text}")
    _note_capped(model_dir, counts)


def _note_capped(model_dir: Path, counts: LongTextCounts) -> None:
    """One stderr line when texts were read only up to the window cap."""
    if counts.capped:
        from sentiment_hf.longtext import describe_capped
        from sentiment_hf.rundir import open_run

        cfg = open_run(model_dir).long_text
        typer.echo(f"note: {describe_capped(cfg, counts.capped)}", err=True)
