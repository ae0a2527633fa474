"""Pruned vs unpruned `sentiment sweep` studies: best objective and training steps of each.

Compares two finished studies (written by ``sentiment sweep`` with the same recipe and sampler
seed, one with ``sweep.pruner=none``) and replays the unpruned study's learning curves under
other pruners.

The replay is exact, not an estimate, for every trial whose parameters do not depend on the
study's history: ``sentiment sweep`` draws trial ``k`` from ``seed + k`` whichever study runs it,
and training is deterministic, so such a trial reports the same value at each evaluation index in
any study of that recipe until it is pruned. A pruner sees nothing else (values and indices of
earlier trials), so feeding it the recorded curves gives the decisions, best value and step counts
a real pruned study would have. That holds for all trials with ``sweep.sampler=random`` and for
TPE's random start-up trials (Optuna's default: the first 10); later TPE trials learn from the
history, which pruning changes, so from there the replay answers "what if these same trials had
been pruned" and only a real pruned study says what TPE would have proposed instead. Check the
replay against a real pruned study: over the exact trials their decisions must agree.

Usage (after the two studies of docs/results.md)::

    uv run python benchmarks/sweep_pruning.py runs/sweep20-unpruned runs/sweep20-median
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import optuna

from sentiment_hf.config.recipe import SweepConfig
from sentiment_hf.sweep import make_pruner

STATE = optuna.trial.TrialState


def load(sweep_dir: Path) -> optuna.Study:
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    return optuna.load_study(
        study_name=summary["study_name"], storage=f"sqlite:///{sweep_dir / 'study.db'}"
    )


def evals_per_epoch(study: optuna.Study) -> int:
    return int(study.user_attrs["sentiment_hf"]["evals_per_epoch"])


def steps_per_epoch(study: optuna.Study) -> dict[int, int]:
    """Optimizer steps per epoch for each batch size, from the study's complete trials."""
    out: dict[int, int] = {}
    for t in study.get_trials(states=(STATE.COMPLETE,)):
        batch = t.params.get("per_device_train_batch_size", 0)
        out[batch] = round(t.user_attrs["train_steps"] / t.user_attrs["epochs"])
    return out


def steps_at(index: int, per_epoch: int, per_eval: int) -> int:
    """The global step of evaluation ``index`` under sentiment_hf.sweep.EvalSchedule."""
    return math.ceil(index * per_epoch / per_eval - 1e-9)


def summary(study: optuna.Study) -> dict[str, Any]:
    done = [t for t in study.trials if t.state in (STATE.COMPLETE, STATE.PRUNED)]
    return {
        "best_trial": study.best_trial.number,
        "best_value": study.best_value,
        "train_steps": sum(t.user_attrs["train_steps"] for t in done),
        "epochs": round(sum(t.user_attrs["epochs"] for t in done), 2),
        "complete": sum(t.state == STATE.COMPLETE for t in done),
        "pruned": sum(t.state == STATE.PRUNED for t in done),
        "wall_s": round(sum(t.duration.total_seconds() for t in done)),
    }


def replay(source: optuna.Study, pruner: optuna.pruners.BasePruner) -> dict[str, Any]:
    """Run ``pruner`` over the recorded curves of ``source`` (an unpruned study)."""
    per_eval = evals_per_epoch(source)
    per_epoch = steps_per_epoch(source)
    scope = source.user_attrs["sentiment_hf"]["objective"]
    better = max if source.direction == optuna.study.StudyDirection.MAXIMIZE else min
    study = optuna.create_study(
        study_name=source.study_name, direction=source.direction, pruner=pruner
    )
    steps, epochs, decisions = 0, 0.0, []
    for recorded in sorted(source.trials, key=lambda t: t.number):
        trial = study.ask()
        values = recorded.intermediate_values
        stopped = None
        for index in sorted(values):
            trial.report(values[index], index)
            if trial.should_prune():
                stopped = index
                break
        last = stopped or max(values)
        steps += steps_at(last, per_epoch[recorded.params["per_device_train_batch_size"]], per_eval)
        epochs += last / per_eval
        if stopped:
            study.tell(trial, state=STATE.PRUNED)
            decisions.append(f"{recorded.number}:pruned@{stopped}")
        else:
            kept = [values[i] for i in sorted(values)]
            study.tell(trial, better(kept) if scope == "best" else kept[-1])
            decisions.append(f"{recorded.number}:complete")
    return {
        "best_trial": study.best_trial.number,
        "best_value": study.best_value,
        "train_steps": steps,
        "epochs": round(epochs, 2),
        "decisions": " ".join(decisions),
    }


def pruner_of(study: optuna.Study, evals: int) -> optuna.pruners.BasePruner | None:
    """The pruner a study ran with, rebuilt by sentiment_hf from the description on its trials."""
    described = {t.user_attrs.get("pruner") for t in study.trials} - {None}
    if len(described) != 1:  # not recorded (older studies) or changed between reruns
        return None
    text = described.pop()
    name, _, args = text.partition("(")
    kwargs = dict(kv.split("=") for kv in args.rstrip(")").split(", ") if kv)
    cfg = SweepConfig(pruner=name, **{k: int(v) for k, v in kwargs.items()})
    return make_pruner(cfg, evals)


def shared_prefix(a: optuna.Study, b: optuna.Study) -> int:
    """How many leading trials have the same parameters in both studies."""
    count = 0
    ordered = (sorted(study.trials, key=lambda t: t.number) for study in (a, b))
    for x, y in zip(*ordered, strict=False):
        if x.params != y.params:
            break
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "unpruned", type=Path, help="sweep directory of the sweep.pruner=none study"
    )
    parser.add_argument("pruned", type=Path, nargs="?", help="sweep directory of a pruned study")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base_study = load(args.unpruned)
    base = summary(base_study)
    evals = max(max(t.intermediate_values) for t in base_study.get_trials(states=(STATE.COMPLETE,)))
    print(f"{'study':40s} {'best':>7s} {'trial':>5s} {'steps':>6s} {'share':>6s} {'epochs':>6s}")

    def line(name: str, row: dict[str, Any]) -> None:
        gap = (row["best_value"] - base["best_value"]) * 100
        share = row["train_steps"] / base["train_steps"]
        print(
            f"{name:40s} {row['best_value']:7.4f} {row['best_trial']:5d} {row['train_steps']:6d} "
            f"{share:6.0%} {row['epochs']:6.2f}  ({gap:+.2f} points) {row.get('decisions', '')}"
        )

    line(f"unpruned ({args.unpruned})", base)
    if args.pruned:
        pruned_study = load(args.pruned)
        real = summary(pruned_study)
        real["decisions"] = " ".join(
            f"{t.number}:pruned@{max(t.intermediate_values)}"
            if t.state == STATE.PRUNED
            else f"{t.number}:complete"
            for t in sorted(pruned_study.trials, key=lambda t: t.number)
            if t.state in (STATE.COMPLETE, STATE.PRUNED)
        )
        line(f"pruned ({args.pruned})", real)
        shared = shared_prefix(base_study, pruned_study)
        if not shared:
            print("  no trial has the same parameters in both studies: no replay check")
            shared = -1
        else:
            print(f"  trials 0-{shared - 1} have the same parameters in both studies")
        pruner = pruner_of(pruned_study, evals)
        if pruner is None:
            print("  its pruner is not recorded on its trials: no replay check")
        elif shared > 0:
            again = replay(base_study, pruner)["decisions"].split()[:shared]
            same = again == real["decisions"].split()[:shared]
            print(f"  replay of its pruner makes the same decisions on those trials: {same}")

    def offered(**settings: Any) -> optuna.pruners.BasePruner:  # as `sentiment sweep` builds it
        return make_pruner(SweepConfig(**settings), evals)

    pruners = {
        "median, 1 startup trial": offered(pruner="median", startup_trials=1),
        "median, 2 startup trials": offered(pruner="median", startup_trials=2),
        "median, 3 startup trials": offered(pruner="median", startup_trials=3),
        "median, 2 startup, 1 warm-up eval": offered(
            pruner="median", startup_trials=2, warmup_evals=1
        ),
        "hyperband, reduction 2": offered(pruner="hyperband", reduction_factor=2),
        "hyperband, reduction 3": offered(pruner="hyperband", reduction_factor=3),
        "successive halving, reduction 2": optuna.pruners.SuccessiveHalvingPruner(1, 2),
        "successive halving, reduction 3": optuna.pruners.SuccessiveHalvingPruner(1, 3),
    }
    print("replays of the unpruned curves:")
    for name, pruner in pruners.items():
        line(f"  {name}", replay(base_study, pruner))


if __name__ == "__main__":
    main()
