"""Batch prediction on Ray Data: the run's model in a pool of actors, past one process or machine.

:func:`predict_dataset` adds the run's answer to every row of a Ray Dataset (``map_batches``
over a fixed pool of actors, each loading the model once); :mod:`sentiment_hf.inference.ray_files`
scores a file with it (``sentiment predict RUN --file IN --output OUT --engine ray``).

Faults are Ray's to handle: an actor that dies (a SIGKILL, a lost node) is restarted and its
unfinished batch retried (Ray Data's actor pools default to ``max_restarts=-1`` and
``max_task_retries=-1``); a batch's output counts only once it is returned, so every row is
answered exactly once. An error in the data (a bad row) is not retried: it ends the job with
the one-line message the one-machine path gives (:func:`unwrap_error`).

Ray is an optional extra (``pip install 'sentiment-hf[ray]'``); this module imports it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data

from sentiment_hf.data.streamio import is_blank, prob_column
from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import physical_cores
from sentiment_hf.inference.batch import (
    default_backend,
)
from sentiment_hf.inference.predictor import Prediction
from sentiment_hf.rundir import RunDir, open_run

log = logging.getLogger(__name__)

#: Rows per actor call of :func:`predict_dataset` (the predictor batches them by length).
DEFAULT_ROWS_PER_CALL = 1024
#: Test hook, not a feature: a folder; the first actor to finish a batch records its pid in
#: ``FOLDER/paused`` and blocks for good instead of returning it, so a test can SIGKILL an actor
#: that holds unanswered rows. Later actors (the restarted one too) see the file and go on.
PAUSE_DIR_ENV = "SENTIMENT_HF_RAY_PAUSE_DIR"


class Scorer:
    """One actor: the run's :class:`~sentiment_hf.inference.predictor.Predictor`, loaded once."""

    def __init__(
        self,
        run_dir: str,
        backend: str,
        batch_size: int,
        threads: int,
        text_column: str,
        pause_dir: str | None,
    ) -> None:
        from sentiment_hf.inference.predictor import Predictor

        self.predictor = Predictor(
            run_dir, backend=backend, batch_size=batch_size, intra_op_threads=threads
        )
        self.run = self.predictor.run
        self.column = text_column
        self.pause_dir = pause_dir

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.column).to_pylist()
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise SentimentError(
                    f"{self.column!r} holds {type(text).__name__} {str(text)[:40]!r} (batch "
                    f"row {i}), not a text; choose the text column with --text-column"
                )
        keep = [i for i, text in enumerate(texts) if text is not None and not is_blank(text)]
        preds = self.predictor.predict([texts[i] for i in keep], strict=False) if keep else []
        for name, values in _columns(self.run, preds, keep, len(texts)).items():
            batch = batch.append_column(name, values)
        self._pause_hook()
        return batch

    def _pause_hook(self) -> None:
        if not self.pause_dir:
            return
        try:
            fd = os.open(Path(self.pause_dir) / "paused", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        threading.Event().wait()  # test hook: blocks until the test kills this process


def _columns(run: RunDir, preds: list[Prediction], keep: list[int], n: int) -> dict[str, pa.Array]:
    """The prediction columns of ``n`` rows, null where a row was blank (not in ``keep``)."""
    at = dict(zip(keep, preds, strict=True))
    types = {"label": pa.string(), "score": pa.float64(), "abstained": pa.bool_()}
    types["labels"] = pa.list_(pa.string())
    out = {}
    for name in run.task.output_columns:
        values = [getattr(at[i], name) if i in at else None for i in range(n)]
        out[name] = pa.array(values, types[name])
    for label in run.labels:
        values = [at[i].probabilities[label] if i in at else None for i in range(n)]
        out[prob_column(label)] = pa.array(values, pa.float64())
    return out


def prediction_from_row(row: dict[str, Any], labels: list[str]) -> Prediction:
    """A :class:`Prediction` back from one row of the columns :func:`_columns` wrote."""
    given = row.get("labels")
    return Prediction(
        text=row["text"],
        label=row["label"],
        score=row["score"],
        probabilities={name: row[prob_column(name)] for name in labels},
        abstained=bool(row.get("abstained", False)),
        labels=list(given) if given is not None else [row["label"]],
    )


def pool_size(actors: int | None, cpus_per_actor: float) -> int:
    """``actors``, or as many as the cluster's CPUs hold at ``cpus_per_actor`` each."""
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor))
    return actors


def predict_dataset(
    model_dir: str | Path | RunDir,
    dataset: ray.data.Dataset,
    *,
    text_column: str | None = None,
    backend: str | None = None,
    batch_size: int = 32,
    actors: int | None = None,
    cpus_per_actor: float = 1,
    rows_per_call: int = DEFAULT_ROWS_PER_CALL,
) -> ray.data.Dataset:
    """``dataset`` with the run's answer added to every row (lazy; nothing runs until read).

    Added columns: the run's task's result columns, ``label`` (the policy's decision,
    ``uncertain`` when it abstains), ``score``, ``abstained`` (single-label) or ``labels``
    (multi-label), ``prob_<label>``; all null on a row whose text is missing or blank. Every
    other column passes through. ``text_column`` defaults to the run's ``data.text_column``;
    ``backend`` to the fastest the run has (:func:`~sentiment_hf.inference.batch.default_backend`);
    ``actors`` to the cluster's CPUs over ``cpus_per_actor``, each actor using that many threads.
    The run directory must be readable at the same path on every node. Rows keep the dataset's
    order when its ``DataContext.execution_options.preserve_order`` is set.
    """
    run = open_run(model_dir)
    column = text_column or (run.recipe.data.text_column if run.recipe else "text")
    return scorer_pool(
        run, dataset, Scorer, column, backend, batch_size, actors, cpus_per_actor, rows_per_call
    )


def scorer_pool(
    run: RunDir,
    dataset: ray.data.Dataset,
    scorer: type[Scorer],
    text_column: str,
    backend: str | None,
    batch_size: int,
    actors: int | None,
    cpus_per_actor: float,
    rows_per_call: int,
) -> ray.data.Dataset:
    """``dataset`` mapped by a fixed pool of ``scorer`` actors (see :func:`predict_dataset`):
    ``actors`` of ``cpus_per_actor`` CPUs (and threads) each, ``rows_per_call`` rows a call."""
    if backend is None:
        backend, _ = default_backend(run)
    actors = pool_size(actors, cpus_per_actor)
    if actors < 1 or cpus_per_actor <= 0 or rows_per_call < 1:
        raise SentimentError("--actors, CPUs per actor and rows per call must be positive")
    return dataset.map_batches(
        scorer,
        fn_constructor_kwargs={
            "run_dir": str(run.path.resolve()),
            "backend": backend,
            "batch_size": batch_size,
            "threads": max(1, int(cpus_per_actor)),
            "text_column": text_column,
            "pause_dir": os.environ.get(PAUSE_DIR_ENV),
        },
        batch_size=rows_per_call,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), or
    start a local one on this machine's cores when ``address`` is None (no dashboard, usage
    stats off, workers at the caller's priority: Ray's default niceness of 15 would leave the
    actors, which do all the work, behind any other load); nothing when this process is
    already connected. True when a cluster was joined or started here (the caller shuts it
    down)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_worker_niceness", "0")
        options["num_cpus"] = physical_cores()
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SentimentError(
            f"could not reach a Ray cluster at {address!r} ({str(exc).splitlines()[0]}); start "
            "one with `ray start --head`, or leave --address out to use this machine"
        ) from exc
    return True


def unwrap_error(exc: BaseException) -> BaseException:
    """The :class:`SentimentError` a Ray task raised, out of Ray's wrappers (a task error's
    ``cause``, Ray Data's ``__cause__`` chain); else ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        cause = getattr(seen, "cause", None)
        if isinstance(cause, BaseException):
            seen = cause
        elif isinstance(seen, SentimentError):
            return SentimentError(*seen.args)
        else:
            seen = seen.__cause__
    return exc
