"""The sweep's report: trial table, ``best.yaml``, plots and ``sweep.json``."""

from __future__ import annotations

import csv
import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sentiment_hf.config.recipe import Recipe, recipe_from_dict
from sentiment_hf.fileio import write_atomic, write_json, write_text_atomic
from sentiment_hf.sweep.plan import SweepPlan, as_plan, trial_dir_name
from sentiment_hf.sweep.space import MODEL_PREFIX
from sentiment_hf.sweep.storage import best_trial, first_line, trials
from sentiment_hf.training.train import TrainResult

log = logging.getLogger(__package__)  # "sentiment_hf.sweep", as log lines always read

BEST_RECIPE_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "sweep.json"


@dataclass(frozen=True)
class TrialRow:
    """One trial of the study as the report shows it (a row of ``trials.csv``)."""

    number: int
    state: str  #: the TrialState's name, e.g. COMPLETE
    value: float | None
    evals: int  #: evaluations reported to the pruner
    last_eval: int | None  #: index of the last one
    train_steps: int | None
    epochs: float | None
    duration_s: float | None
    surplus: bool
    params: dict[str, Any]

    @classmethod
    def from_trial(cls, trial: Any) -> TrialRow:
        steps = sorted(trial.intermediate_values)
        return cls(
            number=trial.number,
            state=trial.state.name,
            value=trial.value,
            evals=len(steps),
            last_eval=steps[-1] if steps else None,
            train_steps=trial.user_attrs.get("train_steps"),
            epochs=trial.user_attrs.get("epochs"),
            duration_s=round(trial.duration.total_seconds(), 1) if trial.duration else None,
            surplus=bool(trial.user_attrs.get("surplus")),
            params=dict(trial.params),
        )

    def __getitem__(self, key: str) -> Any:
        """``row["number"]``: read access by name, as when rows were dicts."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def flat(self) -> dict[str, Any]:
        """The row's columns, then its parameters, in one mapping."""
        return {**{c: getattr(self, c) for c in ROW_COLUMNS}, **self.params}


#: ``trials.csv``'s first columns; the searched parameters follow, sorted by name.
ROW_COLUMNS = tuple(f.name for f in dataclasses.fields(TrialRow) if f.name != "params")


@dataclass
class SweepResult:
    """What :func:`~sentiment_hf.sweep.sweep` left in the study and the sweep directory."""

    sweep_dir: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    n_trials: int
    trials: list[TrialRow]
    counts: dict[str, int]
    total_train_steps: int
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_recipe: Path | None = None
    best_trial_dir: Path | None = None
    plots: list[Path] = field(default_factory=list)
    trials_csv: Path | None = None
    summary_path: Path | None = None
    retrained: TrainResult | None = None


def best_recipe(recipe: Recipe, params: dict[str, Any], number: int | None = None) -> Recipe:
    """The recipe with the best trial's values, no sweep section, training into ``<dir>/best``."""
    raw = recipe.to_dict()
    raw.pop("sweep", None)
    for name, value in params.items():
        if name.startswith(MODEL_PREFIX):
            raw["model"][name.removeprefix(MODEL_PREFIX)] = value
        else:
            raw["training"][name] = value
    raw["training"]["output_dir"] = str(recipe.output_dir / "best")
    raw["name"] = f"{recipe.name}-best" if number is None else f"{recipe.name}-trial-{number}"
    return recipe_from_dict(raw)


def _param_names(rows: list[TrialRow]) -> list[str]:
    return sorted({k for row in rows for k in row.params})


def _write_trials_csv(rows: list[TrialRow], path: Path) -> Path:
    columns = [*ROW_COLUMNS, *_param_names(rows)] if rows else ["number"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                flat = row.flat()
                writer.writerow(["" if flat.get(c) is None else flat.get(c) for c in columns])

    return write_atomic(path, write)


def write_plots(study: optuna.Study, sweep_dir: Path) -> list[Path]:
    """Optimization history, parameter importances and learning curves as PNG (when possible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
        "intermediate_values.png": ovm.plot_intermediate_values,
    }
    written = []
    for filename, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            write_atomic(sweep_dir / filename, partial(figure.savefig, dpi=100, format="png"))
            plt.close(figure)
            written.append(sweep_dir / filename)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for it
            log.info("skipped %s: %s", filename, first_line(exc))
            plt.close("all")
    return written


def summarize(study: optuna.Study, recipe: Recipe | SweepPlan, shown: str) -> SweepResult:
    """Trial table, ``best.yaml``, plots and ``sweep.json`` from what the storage holds now."""
    plan = as_plan(recipe)
    cfg, sweep_dir = plan.cfg, plan.sweep_dir
    all_trials = sorted(trials(study), key=lambda t: t.number)
    rows = [TrialRow.from_trial(t) for t in all_trials if not t.user_attrs.get("surplus")]
    counts = {state.name.lower(): 0 for state in TrialState}
    for row in rows:
        counts[row.state.lower()] += 1
    counts["finished"] = counts["complete"] + counts["pruned"]
    counts["surplus"] = sum(1 for t in all_trials if t.user_attrs.get("surplus"))
    total = sum(r.train_steps or 0 for r in rows if r.state in ("COMPLETE", "PRUNED"))
    result = SweepResult(
        sweep_dir=sweep_dir,
        study_name=study.study_name,
        storage=shown,
        metric=plan.metric,
        direction=plan.direction,
        n_trials=cfg.n_trials,
        trials=rows,
        counts=counts,
        total_train_steps=int(total),
    )
    result.trials_csv = _write_trials_csv(rows, sweep_dir / TRIALS_FILE)
    best = best_trial(study)
    if best is not None:
        result.best_number, result.best_value = best.number, best.value
        result.best_params = dict(best.params)
        winner = best_recipe(plan.recipe, best.params)
        text = (
            f"# best trial {best.number} of study {study.study_name!r}: "
            f"{result.metric}={best.value:.4f}; written by `sentiment sweep`.\n"
            f"# Train it: sentiment train {sweep_dir / BEST_RECIPE_FILE}\n" + winner.to_yaml()
        )
        result.best_recipe = write_text_atomic(sweep_dir / BEST_RECIPE_FILE, text)
        trial_dir = sweep_dir / trial_dir_name(best.number)
        result.best_trial_dir = trial_dir if trial_dir.is_dir() else None
    result.plots = write_plots(study, sweep_dir)
    running = counts["running"] + counts["waiting"]
    if counts["finished"] + running < cfg.n_trials:
        log.warning(
            "study %r has %d of %d trials finished; rerun the same command to continue it",
            study.study_name,
            counts["finished"],
            cfg.n_trials,
        )
    elif running:
        log.warning(
            "study %r: %d trial(s) still running in other workers (or in a crashed worker: its "
            "trial is retried by the next run once its heartbeat is older than the grace "
            "period); the last worker to finish rewrites this report",
            study.study_name,
            running,
        )
    summary = {
        k: v
        for k, v in dataclasses.asdict(result).items()
        if k not in ("retrained", "summary_path")
    }
    result.summary_path = write_json(sweep_dir / SUMMARY_FILE, summary)
    return result


def format_trials(result: SweepResult) -> str:
    """The trial table and the best trial, for the terminal."""
    names = _param_names(result.trials)
    header = ["#", "state", result.metric, "evals", "steps", *names]
    lines = [header]
    for row in result.trials:
        value = "" if row.value is None else f"{row.value:.4f}"
        params = [_fmt(row.params.get(n)) for n in names]
        lines.append(
            [
                str(row.number),
                row.state.lower(),
                value,
                str(row.evals),
                str(row.train_steps or ""),
                *params,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )
    c = result.counts
    out = [
        f"study {result.study_name!r} ({result.storage}): {c['finished']}/{result.n_trials} "
        f"finished ({c['complete']} complete, {c['pruned']} pruned), {c['fail']} failed, "
        f"{result.total_train_steps} training steps",
        table,
    ]
    if result.best_number is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items())
        out.append(
            f"best: trial {result.best_number} {result.metric}={result.best_value:.4f} ({params})"
        )
        out.append(f"best recipe: {result.best_recipe}   (sentiment train {result.best_recipe})")
    if result.plots:
        out.append("plots: " + ", ".join(str(p) for p in result.plots))
    if result.retrained is not None:
        metrics = result.retrained.metrics
        keys = ("eval_accuracy", "test_accuracy", "test_f1")
        out.append(
            f"retrained best to {result.retrained.run_dir}: "
            + ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
        )
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
