"""Fit how a run decides on texts it reads in several windows, from labelled long documents.

``sentiment document-rule RUN FILE`` reads every text of ``FILE`` in the run's windows
(:meth:`~sentiment_hf.inference.predictor.Predictor.window_logits`), describes each text read in
two or more windows by :func:`~sentiment_hf.longtext.document_features` and fits a logistic
regression on them: the :class:`~sentiment_hf.longtext.DocumentRule` stored in the run's
``document_rule.json``, which every consumer of the run (eval, predict, the server, ONNX) then
applies in place of the ``aggregate`` rule. The report compares both rules by cross-validation
on the same texts, so a user sees what the rule is worth before trusting it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.longtext import DocumentRule, aggregate_logits, document_features
from sentiment_hf.rundir import DOCUMENT_RULE_FILE, RunDir, open_run

#: Fewer texts read in several windows than this per label cannot fit a rule worth keeping.
MIN_PER_LABEL = 20
FOLDS = 5


def read_labelled(
    run: RunDir, source: str | Path, text_column: str, label_column: str, label_map: dict
) -> tuple[list[str], np.ndarray]:
    """Texts and the run's label ids of a labelled file (label names, ids, or ``label_map``)."""
    from sentiment_hf.data.readers import read_file

    data = read_file(Path(source))
    for column in (text_column, label_column):
        if column not in data.column_names:
            raise SentimentError(
                f"{source} has no column {column!r} (columns: {', '.join(data.column_names)}); "
                "choose them with --text-column and --label-column"
            )
    ids = {name: i for i, name in enumerate(run.labels)}
    texts, labels = [], []
    for text, value in zip(data[text_column], data[label_column], strict=True):
        value = label_map.get(str(value), value)
        label = ids.get(value, value if isinstance(value, int) else None)
        if label is None or not 0 <= label < len(ids):
            raise SentimentError(
                f"{source}: label {value!r} is not one of the run's labels "
                f"({', '.join(run.labels)}); map it with --label-map {value}=LABEL"
            )
        if isinstance(text, str) and text.strip():
            texts.append(text)
            labels.append(label)
    return texts, np.array(labels)


def fit_document_rule(
    model_dir: str | Path | RunDir,
    source: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Fit and store the run's document rule (see the module doc); returns the report."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from sentiment_hf.inference.predictor import Predictor

    run = open_run(model_dir)
    if run.task.name != "single-label" or run.long_text.mode != "window":
        raise SentimentError(
            "a document rule needs a single-label run that reads long texts in windows "
            "(model.long_text.mode: window)"
        )
    texts, labels = read_labelled(run, source, text_column, label_column, label_map or {})
    predictor = Predictor(run, batch_size=batch_size)
    logits, owner = predictor.window_logits(texts, strict=False)
    several = np.bincount(owner, minlength=len(texts)) > 1
    counts = np.bincount(labels[several], minlength=len(run.labels))
    if counts.min() < MIN_PER_LABEL:
        raise SentimentError(
            f"{source} has {int(several.sum())} texts longer than one window, "
            f"{counts.min()} of the rarest label; a rule needs at least {MIN_PER_LABEL} of each"
        )
    features = document_features(logits, owner, len(texts))[several]
    center, scale = features.mean(0), features.std(0)
    scale[scale == 0] = 1.0
    x, y = (features - center) / scale, labels[several]
    model = LogisticRegression(C=1.0, max_iter=2000)
    folds = min(FOLDS, int(counts.min()))
    fitted_cv = cross_val_score(model, x, y, cv=folds, scoring="accuracy")
    model.fit(x, y)
    plain = aggregate_logits(logits, owner, len(texts), run.long_text.aggregate)[several]
    report = {
        "texts": len(texts),
        "texts_in_several_windows": int(several.sum()),
        f"{run.long_text.aggregate}_accuracy": float((plain.argmax(1) == y).mean()),
        "rule_accuracy_cv": float(fitted_cv.mean()),
        "folds": folds,
        "source": str(source),
    }
    rule = DocumentRule(
        center=center.tolist(),
        scale=scale.tolist(),
        coef=model.coef_.tolist(),
        intercept=model.intercept_.tolist(),
        temperature=float(run.policy.temperature),
        fitted_on=report,
        cut=run.long_text.cut,
    )
    write_json(run.path / DOCUMENT_RULE_FILE, dataclasses.asdict(rule))
    return report
