"""Calibration measures and the decision policy on synthetic logits with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment_hf import SentimentError
from sentiment_hf.tasks.calibration import (
    accuracy_at_coverage,
    bootstrap_interval,
    brier,
    calibration_metrics,
    ece,
    fit_temperature,
    nll,
    risk_coverage,
    softmax,
)
from sentiment_hf.tasks.policy import SingleLabelPolicy, tune_threshold


def _sampled(true_t: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z / true_t): T = true_t calibrates them exactly."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, 3))
    probs = softmax(logits / true_t)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, labels


def test_fitted_temperature_recovers_the_one_that_generated_the_labels() -> None:
    logits, labels = _sampled(true_t=2.0)
    t = fit_temperature(logits, labels)
    assert abs(t - 2.0) < 0.1
    raw, fixed = softmax(logits), softmax(logits / t)
    assert nll(fixed, labels) < nll(raw, labels)
    assert ece(fixed, labels) < 0.02 < ece(raw, labels)


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    # 4 inputs at confidence 0.9 of which 2 are right (gap 0.4), 4 at 0.6 all right (gap 0.4)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 4)
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    assert ece(probs, labels) == pytest.approx(0.4)
    assert brier(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 0])) == pytest.approx(1.0)
    metrics = calibration_metrics(probs, labels)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["mean_confidence"] == pytest.approx(0.75)


def test_risk_coverage_answers_the_most_confident_first() -> None:
    # confidences 0.95 (right), 0.85 (wrong), 0.75 (right), 0.65 (right)
    probs = np.array([[0.95, 0.05], [0.15, 0.85], [0.75, 0.25], [0.35, 0.65]])
    labels = np.array([0, 0, 0, 1])
    cov, acc = risk_coverage(probs, labels)
    assert cov.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert acc.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.75])
    assert accuracy_at_coverage(probs, labels, 0.5) == pytest.approx(0.5)


def test_threshold_tuned_for_f1_moves_towards_a_rare_positive_class() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(4000) < 0.1).astype(int)
    # the model under-rates positives: their p(1) centres on 0.35
    p1 = np.clip(
        np.where(labels == 1, rng.normal(0.35, 0.1, 4000), rng.normal(0.1, 0.08, 4000)), 0, 1
    )
    probs = np.stack([1 - p1, p1], axis=1)
    t = tune_threshold(probs, labels, "f1")
    assert 0.15 <= t <= 0.3
    tuned = SingleLabelPolicy(threshold=t).decide(probs)[0]
    plain = SingleLabelPolicy().decide(probs)[0]
    from sklearn.metrics import f1_score

    assert f1_score(labels, tuned) > f1_score(labels, plain) + 0.2


def test_policy_applies_temperature_and_abstains_below_min_confidence() -> None:
    logits = np.array([[2.0, 0.0], [0.2, 0.0], [0.0, 3.0]])
    policy = SingleLabelPolicy(temperature=2.0, min_confidence=0.6)
    probs = policy.probabilities(logits)
    assert probs[0, 0] == pytest.approx(1 / (1 + np.exp(-1.0)))
    preds, abstained = policy.decide(probs)
    assert preds.tolist() == [0, 0, 1]
    assert abstained.tolist() == [False, True, False]
    back = SingleLabelPolicy.from_dict(policy.to_dict())
    assert back == policy
    with pytest.raises(SentimentError, match="unknown key"):
        SingleLabelPolicy.from_dict({"temperature": 1.0, "tmperature": 2.0})
    with pytest.raises(SentimentError, match="temperature must be > 0"):
        SingleLabelPolicy(temperature=0.0)


def test_tuned_threshold_refuses_more_than_two_labels() -> None:
    with pytest.raises(SentimentError, match="exactly two labels"):
        tune_threshold(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]), "f1")


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(2)

    def accuracy(y: np.ndarray, p: np.ndarray) -> float:
        return float((y == p).mean())

    widths = []
    for n in (200, 3200):
        labels = rng.integers(0, 2, n)
        preds = np.where(rng.random(n) < 0.8, labels, 1 - labels)
        lo, hi = bootstrap_interval(labels, preds, accuracy, n_resamples=400)
        assert lo < accuracy(labels, preds) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2.5  # ~1/sqrt(16) = 1/4 of the width


@pytest.mark.parametrize("num_labels", [2, 3])
def test_bootstrap_metrics_equal_the_reported_ones(num_labels: int) -> None:
    from sentiment_hf.tasks.metrics import classification_metrics, fast_metric

    rng = np.random.default_rng(num_labels)
    labels = rng.integers(0, num_labels, 300)
    preds = np.where(rng.random(300) < 0.7, labels, rng.integers(0, num_labels, 300))
    reported = classification_metrics(labels, preds, num_labels)
    for name in ("accuracy", "f1"):
        assert fast_metric(name, num_labels)(labels, preds) == pytest.approx(reported[name])


def test_ece_objective_picks_a_temperature_at_least_as_reliable_on_the_fitted_data() -> None:
    logits, labels = _sampled(true_t=2.0, n=4000, seed=3)
    t_nll = fit_temperature(logits, labels, "nll")
    t_ece = fit_temperature(logits, labels, "ece")
    assert abs(t_ece - 2.0) < 0.3  # both recover the generating temperature
    assert ece(softmax(logits / t_ece), labels) <= ece(softmax(logits / t_nll), labels) + 1e-3
    with pytest.raises(SentimentError, match="unknown calibration objective 'auc'"):
        fit_temperature(logits, labels, "auc")
