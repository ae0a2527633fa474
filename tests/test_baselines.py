"""benchmarks/baselines.py on slices of the real data: each baseline works and is scored right.

The full benchmark (all 8,530 train sentences, MiniLM embeddings of every split and of 2,000
IMDB reviews) takes minutes and is not part of the suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("baselines")


@pytest.fixture(scope="module")
def rt(bench, rt_dir: Path) -> dict:
    """300 train sentences (seeded shuffle); validation and test whole (1,066 each)."""
    return bench.load_rt(rt_dir, max_train_samples=300, seed=0)["splits"]


def test_splits_are_the_real_ones(rt) -> None:
    assert len(rt["train"][0]) == 300
    assert len(rt["validation"][0]) == len(rt["test"][0]) == 1066
    assert 100 < rt["train"][1].sum() < 200  # the shuffle mixed the class-ordered blocks
    assert rt["test"][1].sum() == 533


def test_imdb_is_read_whole_with_tags_stripped(bench, shared_data: Path) -> None:
    texts, labels = bench.load_imdb(shared_data / "imdb-reviews" / "reviews.csv")
    assert len(texts) == 2000 and int(labels.sum()) == 1005
    assert not any("<br" in t.lower() for t in texts)
    assert bench.clean_review("Good.<br /><br />Really  good<BR>") == "Good. Really good"


def test_tfidf_lr_beats_a_constant_predictor_on_held_out_test(bench, rt) -> None:
    train, val, test = rt["train"], rt["validation"], rt["test"]
    pipeline, c, curve = bench.tfidf_lr(train, val, c_grid=(0.1, 1.0, 10.0, 100.0), seed=0)
    assert c in (0.1, 1.0, 10.0, 100.0)
    assert curve[f"{c:g}"] == max(curve.values())  # the chosen C is the best on validation
    test_acc = bench.accuracy(test[1], pipeline.predict(test[0]))
    constant_acc = bench.accuracy(test[1], np.zeros_like(test[1]))
    assert constant_acc == pytest.approx(0.5)
    assert test_acc > constant_acc + 0.06, test_acc


def test_vader_orders_obvious_sentences_and_its_threshold_is_chosen_on_validation(
    bench, rt
) -> None:
    good, bad, neutral = bench.vader_compound(
        ["a wonderful, moving film", "a dull, awful mess", "the film is 90 minutes long"]
    )
    assert good > 0.5 > -0.5 > bad
    assert neutral == 0.0  # no lexicon word: compound 0, i.e. positive at threshold 0
    val = rt["validation"]
    scores = bench.vader_compound(val[0])
    threshold, curve = bench.select_threshold(scores, val[1], [-0.5, 0.0, 0.05, 0.5])
    assert curve[f"{threshold:g}"] == max(curve.values())
    assert curve["0"] > 0.55  # a lexicon alone is well above chance on RT
    # Ties go to the threshold nearest 0.
    y = np.array([0, 1])
    assert bench.select_threshold(np.array([-0.9, 0.9]), y, [-0.5, 0.2, 0.5])[0] == 0.2


def test_embeddings_are_unit_norm_384_wide_and_independent_of_batch_padding(bench) -> None:
    embedder = bench.Embedder(batch_size=4)
    texts = [
        "a wonderful film",
        "a great movie",
        "the tax form is due in april",
        "an unusually long sentence about nothing much, padded out with many many extra words "
        "so that its batch is padded well beyond the short ones",
        "dull",
    ]
    x = embedder(texts, max_length=64)
    assert x.shape == (5, bench.EMBED_WIDTH) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # Mean pooling honours the attention mask: alone (no padding) == in a padded batch.
    alone = embedder(texts[:1], max_length=64)
    np.testing.assert_allclose(alone[0], x[0], atol=2e-5)
    # max_length truncates: 4 tokens keep only [CLS] + 2 words + [SEP].
    np.testing.assert_allclose(
        embedder([texts[3]], max_length=4)[0], embedder(["an unusually"], max_length=64)[0], 2e-5
    )
    sims = x @ x[0]
    assert sims[1] > sims[2] + 0.2  # "a great movie" is nearer "a wonderful film" than tax forms


def test_embeddings_lr_selects_c_on_validation(bench) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2, 8))
    y = np.repeat([0, 1], 40)
    x = centers[y] + rng.normal(scale=1.5, size=(80, 8))
    head, c, curve = bench.embeddings_lr(x[::2], y[::2], x[1::2], y[1::2], (0.01, 1.0), seed=0)
    assert curve[f"{c:g}"] == max(curve.values()) and head.coef_.shape == (1, 8)


def test_score_row_and_table(bench) -> None:
    y = np.array([0, 1] * 50)
    p = y.copy()
    p[:10] = 1 - p[:10]
    splits = {"validation": (y, p), "test": (y, p), "imdb": (y, 1 - p)}
    row = bench.score_row("m", splits, 1.234, {"C": 3.0}, n_resamples=200, seed=0)
    assert row["test_accuracy"] == pytest.approx(0.9) and row["imdb_accuracy"] == pytest.approx(0.1)
    lo, hi = row["test_accuracy_ci95"]
    assert 0.8 < lo < 0.9 < hi <= 0.97
    assert row == bench.score_row("m", splits, 1.234, {"C": 3.0}, n_resamples=200, seed=0)
    table = bench.markdown_table([row])
    assert "| m | C=3 | 90.0 | 90.0 |" in table and table.count("\n") == 2


def test_a_fine_tuned_run_is_scored_through_the_predictor(bench, tiny_run: Path, rt) -> None:
    labelled = {"test": (rt["test"][0][:40], rt["test"][1][:40]), "imdb": (["great"] * 3, [1] * 3)}
    preds, max_length = bench.predict_run(tiny_run, labelled, imdb_max_length=128)
    assert max_length == 32  # the run's recipe
    assert set(preds) == {"test", "imdb"} and preds["test"][1].shape == (40,)
    assert set(np.unique(preds["test"][1])) <= {0, 1}
    assert bench.positive_index(["neg", "pos"]) == 1
    assert bench.positive_index(["POSITIVE", "NEGATIVE"]) == 0


def test_help_names_the_command(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--help"])
    assert "--imdb-max-length" in capsys.readouterr().out
    assert "flock /tmp/sentiment_cpu.lock" in bench.__doc__
