"""The ``sentiment`` command line: every command is a thin call into one library function."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sentiment_hf.errors import SentimentError
from sentiment_hf.explain import BASELINES, DEFAULT_BASELINE, DEFAULT_STEPS, MAX_STEPS, MAX_TEXTS
from sentiment_hf.monitoring.config import DriftConfig
from sentiment_hf.monitoring.report import DriftThresholds
from sentiment_hf.serve.config import ServeConfig

#: Arguments several commands take, defined once.
RunDirArg = Annotated[Path, typer.Argument(help="A run directory written by `sentiment train`.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Inference batch size.")]
if TYPE_CHECKING:
    from sentiment_hf.explain import Explanation

app = typer.Typer(
    name="sentiment",
    help="Fine-tune, sweep, evaluate, export, serve and ship transformer sentiment classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Dotted KEY=VALUE overrides typed by the recipe schema, e.g. "
        "training.learning_rate=3e-5 data.max_train_samples=500 "
        "data.source=../shared/data/rt-polarity",
        show_default=False,
    ),
]


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe, e.g. recipes/base.yaml.")],
    overrides: Overrides = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue from the last checkpoint in the run directory."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run directory's run.")
    ] = False,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Record a few steps with torch.profiler into RUN_DIR/profile/ (trace, top ops).",
        ),
    ] = False,
    profile_steps: Annotated[
        int, typer.Option(min=1, help="Steps that --profile records (after 2 untimed ones).")
    ] = 3,
) -> None:
    """Fine-tune a classifier as RECIPE says; writes model, metrics.json and manifest.json to
    training.output_dir.

    The recipe sections are model, data, training (any transformers.TrainingArguments field),
    early_stopping and tracking; see README.md for the reference.
    """
    from sentiment_hf.recipe import load_recipe
    from sentiment_hf.training import train as run_train

    result = run_train(
        load_recipe(recipe, overrides or []),
        resume=resume,
        overwrite=overwrite,
        profile_steps=profile_steps if profile else 0,
    )
    keys = ("eval_accuracy", "eval_f1", "test_accuracy", "test_f1")
    summary = ", ".join(f"{k}={result.metrics[k]:.4f}" for k in keys if k in result.metrics)
    typer.echo(f"run saved to {result.run_dir}: {summary}")
    if profile:
        typer.echo(f"profile: {result.run_dir / 'profile'} (trace.json, top_ops.txt)")


@app.command()
def sweep(
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="YAML recipe with a sweep: section (default recipes/sweep.yaml).",
            show_default=False,
        ),
    ] = None,
    overrides: Overrides = None,
    retrain_best: Annotated[
        bool,
        typer.Option(
            "--retrain-best", help="Then train best.yaml to <sweep dir>/best with test metrics."
        ),
    ] = False,
) -> None:
    """Optuna hyperparameter search through the Trainer, as the recipe's sweep: section says.

    Rerun the same command to continue the study up to sweep.n_trials finished trials.
    Start it several times on one storage to run workers in parallel.
    Writes trials.csv, sweep.json, best.yaml and PNG plots to training.output_dir.
    """
    from sentiment_hf.recipe import load_recipe
    from sentiment_hf.sweep import DEFAULT_SWEEP_RECIPE, format_trials
    from sentiment_hf.sweep import sweep as run_sweep

    items = list(overrides or [])
    if recipe is None or ("=" in recipe and not Path(recipe).is_file()):
        items = ([recipe] if recipe else []) + items  # `sentiment sweep KEY=VALUE ...`
        recipe = DEFAULT_SWEEP_RECIPE
    result = run_sweep(load_recipe(recipe, items), retrain_best=retrain_best)
    typer.echo(format_trials(result))


@app.command("eval")
def eval_(
    model_dir: RunDirArg,
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
    data: Annotated[
        str | None, typer.Option(help="Evaluate on this data source instead of the recipe's.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Report folder (default MODEL_DIR/eval).")
    ] = None,
    batch_size: BatchSize = 64,
) -> None:
    """Evaluate a trained model under its decision policy.

    Metrics JSON: accuracy/F1 with bootstrap 95 % intervals, calibration before/after,
    accuracy at 90 % and 80 % coverage.
    PNGs: confusion matrix, reliability diagram, risk-coverage curve, accuracy by length;
    misclassified CSV; all of it on one self-contained page, {split}_report.html.
    """
    from sentiment_hf.evaluation import evaluate_model

    report = evaluate_model(
        model_dir, split=split, data=data, output_dir=output, batch_size=batch_size
    )
    typer.echo(json.dumps(report.metrics, indent=2))
    typer.echo(f"reports: {report.metrics_path.parent}", err=True)


@app.command()
def calibrate(
    model_dir: RunDirArg,
    threshold_metric: Annotated[
        str | None,
        typer.Option(
            help="Also tune the binary decision threshold on validation for this metric: "
            "f1 or balanced_accuracy (default: the most probable label)."
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Answer 'uncertain' when the chosen label's calibrated probability is lower.",
        ),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Fit on this data source instead of the recipe's.")
    ] = None,
    batch_size: BatchSize = 64,
) -> None:
    """Fit the run's decision policy on its validation split and store it in policy.json.

    One temperature (minimising validation NLL) calibrates the probabilities.
    Every backend, eval, predict and the server apply the stored policy.
    NLL, Brier and 10-bin ECE before/after (validation, test) go to metrics.json.
    """
    from sentiment_hf.policy import fit_policy

    report = fit_policy(
        model_dir,
        threshold_metric=threshold_metric,
        min_confidence=min_confidence,
        data=data,
        batch_size=batch_size,
    )
    typer.echo(json.dumps({"policy": report.policy.to_dict(), **report.metrics}, indent=2))
    typer.echo(f"policy: {report.policy_path}  diagram: {report.reliability_path}", err=True)


@app.command()
def predict(
    model_dir: RunDirArg,
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to classify; none reads --file or stdin.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read one text per line from this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    backend: Annotated[
        str, typer.Option(help="Inference backend: torch, onnx or onnx-int8.")
    ] = "torch",
    batch_size: BatchSize = 32,
) -> None:
    """Print the label and probability of each input text."""
    from sentiment_hf.predict import Predictor

    inputs = list(texts or [])
    if file is not None:
        if not file.is_file():
            raise SentimentError(f"--file {str(file)!r} not found")
        inputs += [line for line in file.read_text(encoding="utf-8").split("\n") if line.strip()]
    if not inputs and not sys.stdin.isatty():
        inputs = [line for line in sys.stdin.read().split("\n") if line.strip()]
    if not inputs:
        raise SentimentError(
            "no input texts; pass TEXT arguments, --file FILE or pipe lines on stdin"
        )
    predictor = Predictor(model_dir, backend=backend, batch_size=batch_size)
    for pred in predictor.predict(inputs):
        if as_json:
            typer.echo(json.dumps(pred.to_dict(), ensure_ascii=False))
        else:
            typer.echo(f"{pred.label}\t{pred.score:.4f}\t{pred.text}")


@app.command()
def explain(
    model_dir: RunDirArg,
    texts: Annotated[list[str], typer.Argument(help=f"Texts to explain (at most {MAX_TEXTS}).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    n_steps: Annotated[
        int,
        typer.Option(min=1, max=MAX_STEPS, help="Integrated-gradients steps (cost per text)."),
    ] = DEFAULT_STEPS,
    baseline: Annotated[
        str,
        typer.Option(
            help=f"{' or '.join(BASELINES)}: keep CLS and SEP with PAD between them, or PAD at "
            "every position."
        ),
    ] = DEFAULT_BASELINE,
    color: Annotated[
        bool | None,
        typer.Option("--color/--no-color", help="Colour the words (default: on a terminal)."),
    ] = None,
) -> None:
    """Show which words pushed each text towards its predicted label (green) or away (red).

    Integrated gradients over the input embeddings; attributions are in units of the predicted
    label's calibrated probability and add up to score - baseline score.
    """
    from sentiment_hf.explain import explain as run_explain

    for item in run_explain(model_dir, texts, n_steps=n_steps, baseline=baseline):
        if as_json:
            typer.echo(json.dumps(item.to_dict(), ensure_ascii=False))
        else:
            typer.echo(render_explanation(item), color=color)


#: 256-colour backgrounds from faint to strong: towards the label (green), against it (red).
_TOWARDS = (194, 157, 120, 83, 46)
_AGAINST = (224, 217, 210, 203, 196)


def render_explanation(item: Explanation, top: int = 5) -> str:
    """The text with each word's background coloured by its attribution, then the top words.

    Green pushes towards the explained label, red against it, stronger for larger magnitudes
    (relative to the largest in the text); words under 5 % of it stay plain.
    """
    peak = max((abs(w.attribution) for w in item.words), default=0.0) or 1.0
    parts, pos = [], 0
    for w in item.words:
        parts.append(item.text[pos : w.start])
        share = abs(w.attribution) / peak
        if share < 0.05:
            parts.append(w.word)
        else:
            scale = _TOWARDS if w.attribution > 0 else _AGAINST
            level = scale[min(len(scale) - 1, int(share * len(scale)))]
            parts.append(typer.style(w.word, fg=16, bg=level))
        pos = w.end
    parts.append(item.text[pos:])
    head = f"{item.label}\t{item.score:.4f}"
    if item.abstained:
        head += f"\t(explaining {item.target})"
    if item.truncated:
        head += f"\t(truncated to {item.tokens} tokens)"
    ranked = sorted(item.words, key=lambda w: abs(w.attribution), reverse=True)[:top]
    tops = "  ".join(f"{w.word} {w.attribution:+.3g}" for w in ranked)
    return f"{head}\n{''.join(parts)}\n  top: {tops}  (delta {item.delta:+.1e})"


@app.command("export")
def export_(
    model_dir: RunDirArg,
    quantize: Annotated[
        str | None, typer.Option(help="Also write an int8 model: --quantize int8.")
    ] = None,
    parity: Annotated[
        bool, typer.Option(help="Check the exported files against PyTorch on the test split.")
    ] = True,
    data: Annotated[
        str | None, typer.Option(help="Parity data source instead of the recipe's.")
    ] = None,
    max_samples: Annotated[
        int | None, typer.Option(min=1, help="Check parity on this many test samples only.")
    ] = None,
    per_channel: Annotated[
        bool,
        typer.Option(help="Int8 scales per output channel (measured: more accurate, as fast)."),
    ] = True,
    reduce_range: Annotated[
        bool, typer.Option(help="Quantize weights to 7 bits (for CPUs without VNNI).")
    ] = False,
) -> None:
    """Export MODEL_DIR to model.onnx (and model.int8.onnx) with a parity check on real data."""
    from sentiment_hf.export import export_onnx

    result = export_onnx(
        model_dir,
        quantize=quantize,
        parity=parity,
        data=data,
        max_samples=max_samples,
        per_channel=per_channel,
        reduce_range=reduce_range,
    )
    for path in (result.onnx_path, result.int8_path):
        if path is not None:
            typer.echo(f"wrote {path}", err=True)
    if result.parity_path is not None:
        typer.echo(json.dumps(result.parity, indent=2))
        typer.echo(f"parity report: {result.parity_path}", err=True)


@app.command("push-to-hub")
def push_to_hub_(
    model_dir: RunDirArg,
    repo_id: Annotated[str, typer.Option(help="Target model repository, ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    revision: Annotated[
        str | None, typer.Option(help="Branch to upload to (created when missing).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Stage and list the files; no network.")
    ] = False,
    stage_dir: Annotated[
        Path | None, typer.Option(help="Stage into this new or empty folder (default: temp dir).")
    ] = None,
    license: Annotated[
        str, typer.Option(help="License for the model card metadata.")
    ] = "apache-2.0",
) -> None:
    """Stage MODEL_DIR (safetensors, tokenizer, config, recipe, model card) and upload it.

    The token comes from HF_TOKEN or a saved `hf auth login` and is never printed.
    """
    from sentiment_hf.hub import push_to_hub

    result = push_to_hub(
        model_dir,
        repo_id,
        private=private,
        revision=revision,
        dry_run=dry_run,
        stage_dir=stage_dir,
        license=license,
    )
    typer.echo(f"staged {result.staged.path}:")
    for name, size in result.staged.sizes.items():
        typer.echo(f"  {name}\t{size}")
    if result.uploaded:
        typer.echo(f"uploaded to {result.url}")
    else:
        typer.echo(f"dry run: nothing uploaded to {repo_id}")


@app.command()
def serve(
    model_dir: RunDirArg,
    backend: Annotated[
        str, typer.Option(help="torch, onnx or onnx-int8 (onnx needs `sentiment export`).")
    ] = ServeConfig.backend,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each loads the model).")
    ] = 1,
    runner: Annotated[
        str, typer.Option(help="threadpool (a model call per request) or batch (micro-batching).")
    ] = ServeConfig.runner,
    inference_threads: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Model calls run at once; 0 = one per physical core.",
            show_default="one per physical core",
        ),
    ] = ServeConfig.inference_threads,
    intra_op_threads: Annotated[
        int | None,
        typer.Option(min=0, help="Threads inside one model call; 0 = the backend's default."),
    ] = ServeConfig.intra_op_threads,
    micro_batch_size: Annotated[
        int, typer.Option(min=1, help="Most texts the batch runner joins into one model call.")
    ] = ServeConfig.micro_batch_size,
    request_log: Annotated[
        Path | None, typer.Option(help="SQLite file that receives every prediction.")
    ] = ServeConfig.request_log,
    no_request_log: Annotated[bool, typer.Option("--no-request-log", help="Log nothing.")] = False,
    retention_days: Annotated[
        float | None, typer.Option(help="Delete logged rows older than this many days.")
    ] = ServeConfig.log_retention_days,
    log_mirror: Annotated[
        str | None,
        typer.Option(help="Also copy logged rows to this fsspec URL, e.g. gs://bucket/requests."),
    ] = ServeConfig.log_mirror,
    mirror_option: Annotated[
        list[str] | None,
        typer.Option(
            help="fsspec option KEY=VALUE for --log-mirror (repeatable), e.g. endpoint_url=...."
        ),
    ] = None,
    max_text_chars: Annotated[
        int, typer.Option(min=1, help="Longest text accepted (422 beyond).")
    ] = ServeConfig.max_text_chars,
    max_texts_per_request: Annotated[
        int, typer.Option(min=1, help="Most texts in one request (422 beyond).")
    ] = ServeConfig.max_texts_per_request,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest body accepted (413 beyond).")
    ] = ServeConfig.max_body_bytes,
    drift_report: Annotated[
        Path | None,
        typer.Option(help="drift.json whose flag /metrics exposes as sentiment_drift_detected."),
    ] = ServeConfig.drift_report,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every HTTP request.")
    ] = False,
) -> None:
    """Serve MODEL_DIR over HTTP: POST /predict, GET /health /ready /metrics, the page at /."""
    from sentiment_hf.serve.config import parse_options
    from sentiment_hf.serve.server import serve as run_server

    config = ServeConfig(
        model_dir=model_dir,
        backend=backend,
        runner=runner,
        inference_threads=inference_threads or None,
        intra_op_threads=intra_op_threads or None,
        micro_batch_size=micro_batch_size,
        request_log=None if no_request_log else request_log,
        log_retention_days=retention_days,
        log_mirror=log_mirror,
        log_mirror_options=parse_options(mirror_option or []),
        max_text_chars=max_text_chars,
        max_texts_per_request=max_texts_per_request,
        max_body_bytes=max_body_bytes,
        drift_report=drift_report,
    )
    run_server(config, host=host, port=port, workers=workers, access_log=access_log)


@app.command()
def drift(
    model_dir: Annotated[
        Path, typer.Argument(help="The run directory whose model served the requests.")
    ],
    requests: Annotated[
        str,
        typer.Option(
            help="The SQLite request log of `sentiment serve`, or its --log-mirror URL/folder."
        ),
    ],
    requests_option: Annotated[
        list[str] | None,
        typer.Option(help="fsspec option KEY=VALUE for a --requests URL (repeatable)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only requests newer than this: 24h, 7d or an ISO date-time.")
    ] = DriftConfig.since,
    data: Annotated[
        str | None, typer.Option(help="Training data source instead of the recipe's.")
    ] = DriftConfig.data,
    output: Annotated[
        Path | None, typer.Option(help="Report folder (default MODEL_DIR/drift).")
    ] = DriftConfig.output_dir,
    alpha: Annotated[
        float, typer.Option(help="Significance level of every test.")
    ] = DriftThresholds.alpha,
    min_ks: Annotated[
        float, typer.Option(help="Smallest KS statistic that counts as drift.")
    ] = DriftThresholds.min_ks,
    oov_delta: Annotated[
        float, typer.Option(help="Smallest out-of-vocabulary rate increase.")
    ] = DriftThresholds.oov_delta,
    label_shift: Annotated[
        float, typer.Option(help="Smallest change of a predicted-label share.")
    ] = DriftThresholds.label_shift,
    reference_size: Annotated[
        int, typer.Option(min=2, help="Training texts sampled as reference.")
    ] = DriftConfig.reference_size,
    max_requests: Annotated[
        int, typer.Option(min=2, help="Most recent requests compared.")
    ] = DriftConfig.max_requests,
    min_requests: Annotated[
        int, typer.Option(min=2, help="Refuse to test on fewer requests.")
    ] = DriftConfig.min_requests,
    permutations: Annotated[
        int, typer.Option(min=1, help="Permutations of the MMD test.")
    ] = DriftConfig.permutations,
) -> None:
    """Compare logged requests with the training data; exit code 1 when drift is flagged."""
    from sentiment_hf.monitoring.drift import detect_drift
    from sentiment_hf.serve.config import parse_options

    report = detect_drift(
        DriftConfig(
            model_dir=model_dir,
            requests=requests,
            since=since,
            data=data,
            output_dir=output,
            thresholds=DriftThresholds(
                alpha=alpha, min_ks=min_ks, oov_delta=oov_delta, label_shift=label_shift
            ),
            reference_size=reference_size,
            max_requests=max_requests,
            min_requests=min_requests,
            permutations=permutations,
            storage_options=parse_options(requests_option or []),
        )
    )
    typer.echo(report.summary())
    typer.echo(f"report: {report.paths['html']} and {report.paths['json']}", err=True)
    if report.drift_detected:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: one-line errors with exit code 2 for bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except SentimentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
