"""Three classes end to end, and class-weighted training (issue 12, items 2 and 3).

The 3-class data is real text, built here: ``neg`` and ``pos`` are rt-polarity sentences (the
hub's train / validation / test blocks, a seeded sample of each), ``neutral`` are sentences of
the 2,000 imdb-reviews (``<br />`` removed, split after ``.!?``, 8 to 30 words) that contain no
*polarised* word of rt-polarity's train split, i.e. no word seen in at least 5 train sentences
whose smoothed neg/pos document-frequency ratio is 1.5 or more either way: a weak label, but
the sentences are mostly plot and fact. The train split is deliberately unbalanced (48 / 16 /
48), validation and test are balanced (12 each). One tiny-backbone training (``class_weights:
auto``) serves every test of the module.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, tiny_recipe_overrides
from fastapi.testclient import TestClient

from sentiment_hf import Predictor, SentimentError, load_recipe
from sentiment_hf.imbalance import (
    UNBALANCED_RATIO,
    auto_class_weights,
    imbalance_ratio,
    is_unbalanced,
    resolve_class_weights,
)
from sentiment_hf.tasks.losses import weighted_cross_entropy

LABELS = ["neg", "neutral", "pos"]  # sorted string labels: the class-index order
SIZES = {"train": {"neg": 48, "neutral": 16, "pos": 48}, "validation": 12, "test": 12}
_WORD = re.compile(r"[a-z']+")


def neutral_sentences(shared_data: Path, rt_train: list[tuple[str, int]]) -> list[str]:
    """imdb-reviews sentences with no polarised rt-polarity word (see the module docstring)."""
    df: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for text, label in rt_train:
        df[label].update(set(_WORD.findall(text.lower())))
    polar = {
        w
        for w in set(df[0]) | set(df[1])
        if df[0][w] + df[1][w] + 2 >= 5
        and abs(math.log((df[0][w] + 1) / (df[1][w] + 1))) >= math.log(1.5)
    }
    out = []
    with open(shared_data / "imdb-reviews" / "reviews.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = re.sub(r"<br\s*/?>", " ", row["review"])
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                words = _WORD.findall(sentence.lower())
                if 8 <= len(words) <= 30 and not set(words) & polar and '"' not in sentence:
                    out.append(sentence.strip())
    return out


def build_three_class(shared_data: Path, out: Path, seed: int = 0) -> Path:
    """Write ``{train,validation,test}.csv`` (text, label) of the 3-class set into ``out``."""
    from sentiment_hf.data.load import read_rt_polarity

    rt = read_rt_polarity(shared_data / "rt-polarity")
    rt_train = list(zip(rt["train"]["text"], rt["train"]["label"], strict=True))
    neutral = neutral_sentences(shared_data, rt_train)
    rng = np.random.default_rng(seed)
    rng.shuffle(neutral)
    out.mkdir(parents=True, exist_ok=True)
    taken = 0
    for split in ("train", "validation", "test"):
        sizes = (
            SIZES[split] if isinstance(SIZES[split], dict) else dict.fromkeys(LABELS, SIZES[split])
        )
        texts, labels = rt[split]["text"], np.asarray(rt[split]["label"])
        rows = []
        for name, index in (("neg", 0), ("pos", 1)):
            pick = rng.choice(np.flatnonzero(labels == index), sizes[name], replace=False)
            rows += [(texts[i], name) for i in pick]
        rows += [(t, "neutral") for t in neutral[taken : taken + sizes["neutral"]]]
        taken += sizes["neutral"]
        rng.shuffle(rows)
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return out


@pytest.fixture(scope="module")
def three_class_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_three_class(shared_data, tmp_path_factory.mktemp("three-class"))


def _recipe(backbone: Path, data: Path, out: Path, *extra: str):
    return load_recipe(
        REPO / "recipes" / "base.yaml", [*tiny_recipe_overrides(backbone, data, out), *extra]
    )


@pytest.fixture(scope="module")
def run3(tiny_backbone: Path, three_class_data: Path, tmp_path_factory) -> Path:
    """The one training of this module: 3 classes, ``training.class_weights=auto``."""
    from sentiment_hf import train

    out = tmp_path_factory.mktemp("runs3") / "three"
    train(_recipe(tiny_backbone, three_class_data, out, "training.class_weights=auto"))
    return out


@pytest.fixture(scope="module")
def evaluated(run3: Path):
    from sentiment_hf.evaluation.evaluate import evaluate_model

    return evaluate_model(run3, split="test")


@pytest.fixture(scope="module")
def exported(run3: Path, tmp_path_factory) -> Path:
    from sentiment_hf.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("exported3") / "three"
    shutil.copytree(run3, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(out, quantize="int8")
    return out


def _texts(data: Path, split: str = "test") -> tuple[list[str], list[str]]:
    with open(data / f"{split}.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["label"] for r in rows]


# ------------------------------------------------------------------ weights, without training
def test_auto_weights_are_inverse_frequency_normalised_to_mean_one() -> None:
    counts = {"a": 30, "b": 10, "c": 60}
    weights = auto_class_weights(counts)
    assert weights == pytest.approx({"a": 100 / 90, "b": 100 / 30, "c": 100 / 180})
    # the mean weight over the examples is 1, and the rarer class weighs more, in proportion
    assert sum(counts[k] * weights[k] for k in counts) == pytest.approx(sum(counts.values()))
    assert weights["b"] / weights["a"] == pytest.approx(counts["a"] / counts["b"])
    assert resolve_class_weights("auto", counts) == weights
    assert resolve_class_weights({"b": 4}, counts) == {"a": 1.0, "b": 4.0, "c": 1.0}
    assert resolve_class_weights(None, counts) is None


def test_imbalance_ratio_and_threshold() -> None:
    assert imbalance_ratio({"a": 90, "b": 10}) == 9.0
    assert imbalance_ratio({"a": 5, "b": 0}) == math.inf
    assert not is_unbalanced({"a": 59, "b": 41}, None)  # 1.44 < 1.5
    assert is_unbalanced({"a": 50, "b": 50}, {"a": 60, "b": 40})  # train 1.5 counts
    assert UNBALANCED_RATIO == 1.5


def test_balanced_runs_keep_accuracy_first() -> None:
    from sentiment_hf.imbalance import balance_metrics, order_metrics, summary_line

    per_class = {"neg": {"recall": 0.8}, "pos": {"recall": 0.6}}
    base = {"test_precision": 0.7, "test_accuracy": 0.7, "test_f1_macro": 0.69}
    for train, unbalanced in (({"neg": 55, "pos": 45}, False), ({"neg": 90, "pos": 10}, True)):
        extra = balance_metrics("test", {"neg": 50, "pos": 50}, per_class, train)
        metrics = order_metrics({**base, **extra}, "test")
        assert metrics["test_unbalanced"] is unbalanced
        first = ["test_f1_macro", "test_recall_per_class"] if unbalanced else ["test_accuracy"]
        assert list(metrics)[: len(first)] == first
        line = summary_line(metrics, "test")
        assert (
            line.startswith("test: macro F1 0.6900; recall per class: neg 0.8000, pos 0.6000")
            if unbalanced
            else line == "test: accuracy 0.7000, macro F1 0.6900"
        )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "expected 'auto' or a mapping of label name to a positive weight"),
        ("{neg: 0}", "training.class_weights.neg: a class weight must be a positive number"),
        ("{neg: .nan}", "positive number"),
        ("{neg: true}", "positive number"),
        ("balanced", "expected 'auto' or a mapping"),
        ("{}", "expected 'auto' or a mapping"),
    ],
)
def test_bad_class_weights_fail_when_the_recipe_loads(value: str, message: str) -> None:
    with pytest.raises(SentimentError, match=re.escape(message)):
        load_recipe(REPO / "recipes" / "base.yaml", [f"training.class_weights={value}"])


def test_unknown_label_and_empty_class_are_named(tiny_backbone, three_class_data, tmp_path) -> None:
    from sentiment_hf.training.train import build_training_args, prepare

    recipe = _recipe(tiny_backbone, three_class_data, tmp_path, "training.class_weights={mixed: 2}")
    with pytest.raises(SentimentError, match="'mixed' is not a label of this data; the labels are"):
        prepare(recipe, build_training_args(recipe))
    with pytest.raises(SentimentError, match="class 'b' has no train example"):
        resolve_class_weights("auto", {"a": 3, "b": 0})


def test_cli_bad_class_weights_is_one_line_exit_2(monkeypatch, capsys) -> None:
    from sentiment_hf.cli import main

    monkeypatch.setattr(
        sys, "argv", ["sentiment", "train", "recipes/base.yaml", "training.class_weights={pos: -2}"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: training.class_weights.pos: a class weight must be a positive number, got -2"
    ]


def test_weighted_loss_equals_hand_computed_weighted_cross_entropy() -> None:
    import torch

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 3.0]])
    labels = torch.tensor([0, 2, 1, 2])
    w = [0.5, 3.0, 1.25]
    z = logits.numpy().astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    picked = np.array([log_p[i, y] for i, y in enumerate(labels.tolist())])
    wy = np.array([w[y] for y in labels.tolist()])
    hand = float(-(wy * picked).sum() / wy.sum())
    loss = weighted_cross_entropy(w)({"logits": logits}, labels)
    assert float(loss) == pytest.approx(hand, rel=1e-6)
    # equal weights give the plain cross-entropy; a whole step of 8 labels halves a 4-row batch
    plain = -picked.mean()
    assert float(weighted_cross_entropy([2.0] * 3)({"logits": logits}, labels)) == pytest.approx(
        plain
    )
    half = weighted_cross_entropy(w)({"logits": logits}, labels, num_items_in_batch=8)
    assert float(half) == pytest.approx(hand / 2, rel=1e-6)


def test_trainer_and_sweep_trainer_compute_the_weighted_loss(
    tiny_backbone: Path, three_class_data: Path, tmp_path: Path
) -> None:
    """The hook reaches the Trainer built by build_trainer, and the sweep's Trainer subclass."""
    import torch
    from transformers import DataCollatorWithPadding

    from sentiment_hf.sweep.plan import as_plan
    from sentiment_hf.sweep.trainer import SweepTrainer, build_sweep_trainer
    from sentiment_hf.training.train import build_trainer, build_training_args, prepare

    weights = "{neg: 0.5, neutral: 4.0}"
    recipe = _recipe(tiny_backbone, three_class_data, tmp_path, f"training.class_weights={weights}")
    args = build_training_args(recipe)
    prepared = prepare(recipe, args)
    assert prepared.class_weights == {"neg": 0.5, "neutral": 4.0, "pos": 1.0}
    sweep_recipe = load_recipe(
        REPO / "recipes" / "sweep.yaml",
        [
            *tiny_recipe_overrides(tiny_backbone, three_class_data, tmp_path / "sweep"),
            f"training.class_weights={weights}",
        ],
    )
    for trainer in (build_trainer(prepared, args), build_sweep_trainer(as_plan(sweep_recipe))):
        model = trainer.model if trainer.model is not None else trainer.model_init()
        model.eval()  # no dropout: the two forward passes below see the same logits
        rows = [prepared.tokenized["train"][i] for i in range(12)]
        batch = DataCollatorWithPadding(prepared.tokenizer)(rows)
        with torch.no_grad():
            loss = trainer.compute_loss(model, dict(batch))
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        w = torch.tensor([0.5, 4.0, 1.0])[batch["labels"]]
        nll = -torch.log_softmax(logits, -1)[torch.arange(12), batch["labels"]]
        assert float(loss) == pytest.approx(float((w * nll).sum() / w.sum()), rel=1e-5)
    assert isinstance(trainer, SweepTrainer)


# ------------------------------------------------------------------ three classes, one training
def test_training_records_labels_counts_and_auto_weights(run3: Path) -> None:
    from sentiment_hf.rundir import RunDir

    run = RunDir.open(run3)
    assert run.labels == LABELS
    manifest = run.manifest
    assert manifest["class_counts"]["train"] == SIZES["train"]
    assert manifest["class_counts"]["test"] == dict.fromkeys(LABELS, 12)
    n, k = sum(SIZES["train"].values()), len(LABELS)
    assert manifest["class_weights"] == pytest.approx(
        {name: n / (k * c) for name, c in SIZES["train"].items()}
    )
    assert run.recipe.training["class_weights"] == "auto"
    metrics = json.loads((run3 / "metrics.json").read_text())
    assert metrics["test_f1"] == metrics["test_f1_macro"]  # no positive class among three


def test_eval_per_class_confusion_and_unbalanced_order(
    run3: Path, evaluated, three_class_data
) -> None:
    from sentiment_hf.tasks.metrics import confusion

    m = evaluated.metrics
    assert set(m["test_per_class"]) == set(LABELS)
    assert all(row["support"] == 12 for row in m["test_per_class"].values())
    # train is 48/16/48 (ratio 3 >= 1.5): macro F1, then each class's recall lead the JSON
    assert m["test_unbalanced"] is True and m["train_imbalance_ratio"] == 3.0
    saved = json.loads(evaluated.metrics_path.read_text())
    assert list(saved)[:2] == ["test_f1_macro", "test_recall_per_class"]
    assert saved["test_recall_per_class"] == {
        k: v["recall"] for k, v in m["test_per_class"].items()
    }
    # the confusion matrix is 3x3 and agrees with the per-class recall
    texts, gold = _texts(three_class_data)
    preds = Predictor(run3).predict(texts)
    y = np.array([LABELS.index(g) for g in gold])
    p = np.array([LABELS.index(x.label) for x in preds])
    matrix = confusion(y, p, 3)
    assert matrix.shape == (3, 3) and matrix.sum(1).tolist() == [12, 12, 12]
    for i, name in enumerate(LABELS):
        assert m["test_per_class"][name]["recall"] == pytest.approx(matrix[i, i] / 12)
    page = evaluated.report_path.read_text(encoding="utf-8")
    head = page[page.index("Headline metrics") :]
    assert head.index("Macro F1") < head.index("Recall: neutral") < head.index("Accuracy")
    assert "Classes are unbalanced" in head


def test_eval_terminal_line_leads_with_macro_f1(run3: Path, tmp_path, monkeypatch, capsys) -> None:
    from sentiment_hf.cli import main

    argv = ["sentiment", "eval", str(run3), "--no-explain", "--json", "--output", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert (exit_info.value.code or 0) == 0
    out = capsys.readouterr()
    assert next(iter(json.loads(out.out))) == "test_f1_macro"
    assert re.search(
        r"test: macro F1 [\d.]+; recall per class: neg [\d.]+, neutral [\d.]+, pos [\d.]+; "
        r"accuracy [\d.]+ \(classes unbalanced, max/min class share: train 3\.0, test 1\.0\)",
        out.err,
    ), out.err


def test_predict_and_onnx_give_three_probabilities(exported: Path, three_class_data) -> None:
    texts, _ = _texts(three_class_data)
    torch_probs = Predictor(exported).predict_proba(texts)
    assert torch_probs.shape == (len(texts), 3)
    np.testing.assert_allclose(torch_probs.sum(1), 1.0, atol=1e-5)
    onnx_probs = Predictor(exported, backend="onnx").predict_proba(texts)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)
    parity = json.loads((exported / "export_parity.json").read_text())
    assert parity["samples"] == 36 and parity["onnx"]["argmax_agreement_pct"] == 100.0
    preds = Predictor(exported, backend="onnx-int8").predict(texts[:4])
    assert all(set(p.probabilities) == set(LABELS) for p in preds)


def test_serve_and_drift_with_three_labels(run3: Path, three_class_data, tmp_path) -> None:
    from sentiment_hf.monitoring import DriftConfig, detect_drift
    from sentiment_hf.serve import create_app

    texts, _ = _texts(three_class_data, "validation")
    expected = Predictor(run3).predict_proba(texts)
    db = tmp_path / "requests.db"
    app = create_app(run3, request_log=db, log_flush_interval_s=0.05)
    with TestClient(app) as client:
        resp = client.post("/predict", json={"texts": texts})
        assert resp.status_code == 200, resp.text
        for pred, probs in zip(resp.json()["predictions"], expected, strict=True):
            assert list(pred["probabilities"]) == LABELS
            assert pred["label"] == LABELS[int(probs.argmax())]
            assert pred["probabilities"]["neutral"] == pytest.approx(float(probs[1]), abs=1e-5)
        served = Counter(p["label"] for p in resp.json()["predictions"])
        metrics = client.get("/metrics").text
        counted = re.findall(r'sentiment_predictions_total\{label="(\w+)"\} ([\d.]+)', metrics)
        assert {name: int(float(n)) for name, n in counted} == served
    report = detect_drift(
        DriftConfig(
            run3,
            db,
            output_dir=tmp_path / "drift",
            min_requests=10,
            reference_size=100,
            embedding_sample=30,
            permutations=50,
        )
    )
    label_mix = next(c for c in report.checks if c.name == "label_mix")
    assert set(label_mix.details["reference_shares"]) == set(LABELS)
    assert sum(label_mix.details["current_shares"].values()) == pytest.approx(1.0, abs=1e-3)


def test_model_card_names_three_classes_weights_and_per_class(run3: Path, evaluated) -> None:
    from sentiment_hf.hub.card import build_model_card

    card = build_model_card(run3, "someone/three-class")
    assert "A 3-class sentiment classifier (neg, neutral, pos)" in card
    assert "| train examples per class | neg 48 / neutral 16 / pos 48 |" in card
    assert re.search(
        r"\| class weights \(loss\) \| neg 0\.778 / neutral 2\.33 / pos 0\.778 \(auto", card
    )
    assert "| split | samples | Macro F1 | Accuracy | Macro precision | Macro recall |" in card
    assert "| `neutral` |" in card  # the per-class test table from sentiment eval
