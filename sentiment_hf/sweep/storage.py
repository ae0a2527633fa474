"""The study's storage: open Optuna's RDB storage, create or check the study, list its trials."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sentiment_hf.config.recipe import Recipe, SweepConfig
from sentiment_hf.errors import SentimentError
from sentiment_hf.sweep.plan import SweepPlan, as_plan, storage_url, trial_dir_name

log = logging.getLogger(__package__)  # "sentiment_hf.sweep", as log lines always read

STUDY_ATTR = "sentiment_hf"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
#: What a database says when several workers create a new study schema at the same moment (a
#: table or the alembic version row written twice); opening again once it exists succeeds.
_CREATION_RACE = ("already exists", "unique constraint", "duplicate key", "database is locked")
#: ``sweep.storage: env:NAME`` reads the URL (and its password) from environment variable NAME.
ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: SQLAlchemy's default driver for these is psycopg2; the project installs psycopg 3.
_BARE_POSTGRES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def open_storage(cfg: SweepConfig, sweep_dir: Path) -> tuple[Any, str]:
    """Optuna RDB storage for ``sweep.storage`` with heartbeats; returns it and a printable URL."""
    return open_storage_url(storage_url(cfg, sweep_dir), cfg)


def resolve_storage(value: str) -> str:
    """The database URL ``sweep.storage`` names: ``env:NAME`` reads environment variable NAME.

    Anything else is the URL itself. A bare ``postgresql://`` (or ``postgres://``) URL gets the
    installed psycopg 3 driver (SQLAlchemy would pick psycopg2 for it).
    """
    url = value
    if value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        if not _ENV_NAME.fullmatch(name):
            raise SentimentError(
                f"sweep.storage {value!r}: after env: give an environment variable's name, e.g. "
                "env:SENTIMENT_SWEEP_STORAGE"
            )
        url = os.environ.get(name, "").strip()
        if not url:
            raise SentimentError(
                f"sweep.storage is {value} but the environment variable {name} is not set or "
                f"empty; set it to the storage URL (export {name}=postgresql://USER:PASSWORD@HOST/DB"
                ", or bind it from a secret)"
            )
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _BARE_POSTGRES:
        url = f"{_BARE_POSTGRES[scheme]}://{rest}"
    return url


def mask_url(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``, whether or not it parses."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        head, at, tail = url.rpartition("@")
        scheme, sep, userinfo = head.rpartition("://")
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}{sep}{user}:***@{tail}" if at and colon else url


def open_storage_url(url: str, cfg: SweepConfig) -> tuple[Any, str]:
    """:func:`open_storage` for a plan's ``storage_url`` (a URL or ``env:NAME``).

    The password never leaves this function: the printable URL and every error show ``***``.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    hint = (
        "set sweep.storage to a SQLAlchemy URL such as sqlite:///runs/sweep/study.db, or to "
        "env:NAME with NAME an environment variable holding postgresql://USER:PASSWORD@HOST/DB"
    )
    url = resolve_storage(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SentimentError(
            f"sweep.storage {mask_url(url)!r} is not a database URL; {hint}"
        ) from None  # SQLAlchemy's message repeats the unmasked string
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    reach = hint
    if backend != "sqlite":
        reach = (
            "check that the database server runs and is reachable from here and that the URL's "
            "user, password and database are right"
        )

    def scrub(text: str) -> str:  # a driver's message never echoes the password, but be sure
        return text.replace(str(parsed.password), "***") if parsed.password else text

    if parsed.password and not (cfg.storage or "").startswith(ENV_PREFIX):
        log.warning(
            "sweep.storage holds a password, where recipes, shell history and process lists show "
            "it; put the URL in an environment variable NAME and set sweep.storage=env:NAME"
        )
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    if backend != "sqlite":
        engine_kwargs = {"pool_pre_ping": True}
        if backend == "postgresql":  # an unreachable server fails in seconds, not minutes
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(5):
        try:
            return _rdb_storage(url, engine_kwargs, cfg), shown
        except DBAPIError as exc:
            if _creation_race(exc) and attempt < 4:  # another worker is creating the schema
                time.sleep(0.5 + attempt)
                continue
            raise SentimentError(
                f"cannot open sweep storage {shown}: {scrub(first_line(exc))}; {reach}"
            ) from exc
        except ImportError as exc:
            raise SentimentError(
                f"cannot open sweep storage {shown}: no database driver for "
                f"{parsed.drivername!r} is installed; install one (mysql: pymysql) or use a "
                "postgresql:// (psycopg, installed) or sqlite:/// URL"
            ) from exc
        except Exception as exc:  # an unknown dialect, bad URL options, ...
            raise SentimentError(
                f"cannot open sweep storage {shown}: {type(exc).__name__}: "
                f"{scrub(first_line(exc))}; {hint}"
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
        attrs = storage.get_study_user_attrs(study_id)
        # Unmarked and empty: another worker is creating it this moment (it marks the study
        # right after creating it, before any trial), or an empty study nobody used; either
        # way it is adopted below. Unmarked with trials: some other program's study.
        if STUDY_ATTR in attrs or storage.get_all_trials(study_id, deepcopy=False):
            _check_signature(attrs, signature, name, shown)
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
