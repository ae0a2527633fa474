"""``sentiment train | sweep | eval | calibrate | explain | export``: the model's life."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sentiment_hf.cli.app import BatchSize, JsonFlag, Overrides, RunDirArg, app
from sentiment_hf.errors import SentimentError
from sentiment_hf.inference.explain import (
    BASELINES,
    DEFAULT_BASELINE,
    DEFAULT_STEPS,
    MAX_STEPS,
    MAX_TEXTS,
)

if TYPE_CHECKING:
    from sentiment_hf.inference.explain import Explanation


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

    The recipe sections are model (with long_text), data, training (any
    transformers.TrainingArguments field), early_stopping, tracking, policy (the decision
    policy fitted after training) and sweep (for `sentiment sweep`); README.md's recipe table
    lists every key with its default. A finished run removes the ONNX files, parity report,
    policy and eval reports made from earlier weights in training.output_dir.
    """
    from sentiment_hf.config.recipe import load_recipe
    from sentiment_hf.training.train import train as run_train

    result = run_train(
        load_recipe(recipe, overrides or []),
        resume=resume,
        overwrite=overwrite,
        profile_steps=profile_steps if profile else 0,
    )
    keys = ("eval_accuracy", "eval_f1", "eval_f1_macro", "test_accuracy", "test_f1")
    keys += ("test_f1_macro",)
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
    from sentiment_hf.config.recipe import load_recipe
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
    explain_mistakes: Annotated[
        bool,
        typer.Option(
            "--explain/--no-explain",
            help="Highlight the words of the report's most confident mistakes "
            "(integrated gradients; a few seconds on a CPU; single-label runs).",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a trained model under its decision policy.

    Prints a short table (--json: every metric as JSON, as saved in {split}_metrics.json):
    accuracy/F1 with bootstrap 95 % intervals, calibration before/after, accuracy at 90 % and
    80 % coverage.
    PNGs: confusion matrix (per-label counts for a multi-label run), reliability diagram,
    risk-coverage curve (single-label), accuracy by length; misclassified CSV; all of it on one
    self-contained page, {split}_report.html.
    """
    from sentiment_hf.cli.summary import eval_summary
    from sentiment_hf.evaluation.evaluate import evaluate_model
    from sentiment_hf.imbalance import summary_line
    from sentiment_hf.rundir import RunDir

    run = RunDir.open(model_dir)  # a bad MODEL_DIR is named before anything loads
    report = evaluate_model(
        run,
        split=split,
        data=data,
        output_dir=output,
        batch_size=batch_size,
        explain=explain_mistakes,  # a multi-label run's mistakes are not explained
    )
    if as_json:
        typer.echo(json.dumps(report.metrics, indent=2))
    else:
        title = f"{run.path}, {report.split} split"
        typer.echo(eval_summary(report.metrics, report.split, title))
    typer.echo(summary_line(report.metrics, report.split), err=True)
    typer.echo(f"reports: {report.metrics_path.parent}  page: {report.report_path}", err=True)


@app.command()
def calibrate(
    model_dir: RunDirArg,
    threshold_metric: Annotated[
        str | None,
        typer.Option(
            help="Also tune the binary decision threshold on validation for this metric: "
            "f1 or balanced_accuracy (default: the run's recipe, policy.threshold_metric; "
            "none there: the most probable label). Multi-label runs always tune one threshold "
            "per label (default f1)."
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Answer 'uncertain' when the chosen label's calibrated probability is lower "
            "(default: the run's recipe, policy.min_confidence).",
        ),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Fit on this data source instead of the recipe's.")
    ] = None,
    batch_size: BatchSize = 64,
    objective: Annotated[
        str | None,
        typer.Option(
            help="What the temperature minimises on validation: nll (negative log-likelihood, "
            "a bounded 1-D search) or ece (10-bin ECE over a grid of temperatures). Default: "
            "the run's recipe, policy.objective (ece in recipes/base.yaml; nll when a recipe "
            "leaves it out)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fit the run's decision policy on its validation split and store it in policy.json.

    Options left out take the run's recipe (its policy: section), so a refit decides as
    training did. One temperature (minimising policy.objective, NLL or ECE, on validation)
    calibrates the probabilities; a multi-label
    run gets per-label temperatures or Platt scaling when they beat none in cross-validation.
    Every backend, eval, predict and the server apply the stored policy.
    Prints what was fitted on what and NLL / 10-bin ECE before and after (--json: the policy
    and every measure). Fitted on the run's own data, the measures (NLL, Brier, ECE of
    validation and test) join metrics.json; --data must hold its own validation and test files.
    """
    from sentiment_hf.cli.summary import calibrate_summary
    from sentiment_hf.evaluation.calibrate import fit_policy

    report = fit_policy(
        model_dir,
        threshold_metric=threshold_metric,
        min_confidence=min_confidence,
        data=data,
        batch_size=batch_size,
        objective=objective,
    )
    if as_json:
        typer.echo(json.dumps({"policy": report.policy.to_dict(), **report.metrics}, indent=2))
    else:
        typer.echo(calibrate_summary(report.policy.to_dict(), report.metrics))
    typer.echo(f"policy: {report.policy_path}  diagram: {report.reliability_path}", err=True)


@app.command("document-rule")
def document_rule(
    model_dir: RunDirArg,
    data: Annotated[
        str, typer.Argument(help="Labelled long texts: a .csv, .tsv, .jsonl or .parquet file.")
    ],
    text_column: Annotated[str, typer.Option(help="The text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="The label column.")] = "label",
    label_map: Annotated[
        list[str] | None,
        typer.Option(
            help="VALUE=LABEL for a label value that is not one of the run's labels "
            "(repeatable), e.g. positive=pos.",
            show_default=False,
        ),
    ] = None,
    batch_size: BatchSize = 64,
) -> None:
    """Fit how the run decides on texts it reads in several windows, from labelled long texts.

    A logistic regression over statistics of each text's window logits (per label: mean, max,
    min, first, last; and the number of windows) replaces model.long_text.aggregate for every
    text longer than one window, in eval, predict, the server and ONNX; shorter texts keep the
    sentence model's answer. Stored in RUN/document_rule.json (delete it to go back). Prints
    both rules' accuracy on these texts (the rule's by 5-fold cross-validation). Keep the texts
    apart from those you report on.
    """
    from sentiment_hf.evaluation.document_rule import fit_document_rule

    mapping = {}
    for pair in label_map or []:
        value, sep, label = pair.partition("=")
        if not sep:
            raise SentimentError(f"--label-map {pair!r} is not VALUE=LABEL, e.g. positive=pos")
        mapping[value] = label
    report = fit_document_rule(
        model_dir,
        data,
        text_column=text_column,
        label_column=label_column,
        label_map=mapping,
        batch_size=batch_size,
    )
    typer.echo(json.dumps(report, indent=2))


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
    from sentiment_hf.inference.explain import explain as run_explain

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
    int8_weights: Annotated[
        str,
        typer.Option(
            help="Int8 weight type: s8, u8, or auto (both tried; the one whose logits stay "
            "closer to fp32 on the validation split is kept; u8 avoids the 16-bit saturation "
            "of AVX2 CPUs without VNNI)."
        ),
    ] = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Export MODEL_DIR to model.onnx (and model.int8.onnx) with a parity check on real data.

    Prints a parity table per exported file (--json: the export_parity.json report).
    """
    from sentiment_hf.cli.summary import export_summary
    from sentiment_hf.export.onnx import export_onnx

    result = export_onnx(
        model_dir,
        quantize=quantize,
        parity=parity,
        data=data,
        max_samples=max_samples,
        per_channel=per_channel,
        reduce_range=reduce_range,
        int8_weights=int8_weights,
        announce=lambda line: typer.echo(line, err=True),
    )
    for path in (result.onnx_path, result.int8_path):
        if path is not None:
            typer.echo(f"wrote {path}", err=True)
    if result.parity_path is not None:
        summary = export_summary(result.parity)
        typer.echo(json.dumps(result.parity, indent=2) if as_json else summary)
        typer.echo(f"parity report: {result.parity_path}", err=True)
