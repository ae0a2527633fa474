"""The study's storage: open Optuna's RDB storage, create or check the study, list its trials."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sentiment_hf.errors import SentimentError
from sentiment_hf.recipe import Recipe, SweepConfig
from sentiment_hf.sweep.plan import SweepPlan, as_plan, storage_url, trial_dir_name

log = logging.getLogger(__package__)  # "sentiment_hf.sweep", as log lines always read

STUDY_ATTR = "sentiment_hf"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
#: What a database says when several workers create a new study schema at the same moment (a
#: table or the alembic version row written twice); opening again once it exists succeeds.
_CREATION_RACE = ("already exists", "unique constraint", "duplicate key", "database is locked")


def open_storage(cfg: SweepConfig, sweep_dir: Path) -> tuple[Any, str]:
    """Optuna RDB storage for ``sweep.storage`` with heartbeats; returns it and a printable URL."""
    return open_storage_url(storage_url(cfg, sweep_dir), cfg)


def open_storage_url(url: str, cfg: SweepConfig) -> tuple[Any, str]:
    """:func:`open_storage` for a resolved URL (a plan's ``storage_url``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    hint = (
        "set sweep.storage to a SQLAlchemy URL such as sqlite:///runs/sweep/study.db or "
        "postgresql://user@host/db"
    )
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SentimentError(f"sweep.storage {url!r} is not a database URL; {hint}") from exc
    shown = parsed.render_as_string(hide_password=True)
    sqlite = parsed.get_backend_name() == "sqlite"
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            return _rdb_storage(url, engine_kwargs, cfg), shown
        except DBAPIError as exc:
            if _creation_race(exc) and attempt < 4:  # another worker is creating the schema
                time.sleep(0.5 + attempt)
                continue
            raise SentimentError(
                f"cannot open sweep storage {shown}: {first_line(exc)}; {hint}"
            ) from exc
        except ImportError as exc:
            raise SentimentError(
                f"cannot open sweep storage {shown}: no database driver for "
                f"{parsed.drivername!r} is installed; install one (postgresql: psycopg2-binary, "
                "mysql: pymysql) or use a sqlite:/// URL"
            ) from exc
        except Exception as exc:  # bad dialect, unreachable server, bad credentials, ...
            raise SentimentError(
                f"cannot open sweep storage {shown}: {type(exc).__name__}: {first_line(exc)}; "
                f"{hint}"
            ) from exc
    raise AssertionError("unreachable")


def _creation_race(exc: Exception) -> bool:
    return any(text in str(exc).lower() for text in _CREATION_RACE)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], cfg: SweepConfig) -> Any:
    """RDBStorage with heartbeats; a stale trial (dead worker) is queued again, up to 3 times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=cfg.heartbeat_interval,
            grace_period=cfg.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (of the DBAPI error behind it, if any)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [k for k in sorted(set(old) | set(new)) if k != "params" and old.get(k) != new.get(k)]
    old_p, new_p = old.get("params", {}), new.get("params", {})
    changed += [
        f"params.{k}" for k in sorted(set(old_p) | set(new_p)) if old_p.get(k) != new_p.get(k)
    ]
    return changed


def open_study(recipe: Recipe | SweepPlan, storage: Any, shown: str) -> optuna.Study:
    """Create the study, or load it after checking that its search space and objective match."""
    plan = as_plan(recipe)
    name = plan.study_name
    signature = plan.signature()
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        study_id = None
    if study_id is not None:
        _check_signature(storage.get_study_user_attrs(study_id), signature, name, shown)
    study = optuna.create_study(
        storage=storage, study_name=name, direction=plan.direction, load_if_exists=True
    )
    attrs = study.user_attrs  # another worker may have created it a moment ago
    if STUDY_ATTR in attrs:
        _check_signature(attrs, signature, name, shown)
        if attrs.get("recipe_digest") != plan.recipe_digest():
            log.warning(
                "study %r was started from a recipe that differs outside its sweep: section; "
                "trials run now may not be comparable with the earlier ones",
                name,
            )
    else:
        study.set_user_attr(STUDY_ATTR, signature)
        study.set_user_attr("recipe_digest", plan.recipe_digest())
    return study


def _check_signature(
    attrs: dict[str, Any], signature: dict[str, Any], name: str, shown: str
) -> None:
    stored = attrs.get(STUDY_ATTR)
    if stored is None:
        raise SentimentError(
            f"study {name!r} in {shown} was not created by `sentiment sweep`; "
            "set sweep.study_name to a new name"
        )
    changed = _diff(stored, signature)
    if changed:
        raise SentimentError(
            f"study {name!r} in {shown} was created with a different search space or objective "
            f"({', '.join(changed)} changed); continue it with its original sweep section, or set "
            "sweep.study_name=NEW_NAME to start a new study"
        )


def trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[Any]:
    """The study's trials (in those states), as the storage holds them now."""
    return study.get_trials(deepcopy=False, states=states)


def best_trial(study: optuna.Study) -> Any | None:
    """The best complete trial, or None before the first one."""
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def remove_trial_dirs(study: optuna.Study, sweep_dir: Path) -> None:
    """Delete the directories of ended trials, except the best trial's (running ones stay)."""
    best = best_trial(study)
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in trials(study, ended):
        if best is None or trial.number != best.number:
            shutil.rmtree(sweep_dir / trial_dir_name(trial.number), ignore_errors=True)
