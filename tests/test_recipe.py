"""Recipe schema: YAML → dataclasses, typed dotted overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_hf.config.recipe import (
    DEFAULT_BACKBONE,
    TRAINING_DEFAULTS,
    load_recipe,
    read_recipe_file,
    recipe_from_dict,
    save_recipe,
)
from sentiment_hf.errors import SentimentError

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "recipes" / "base.yaml"
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def test_base_recipe_is_the_default_task() -> None:
    recipe = load_recipe(BASE)
    assert recipe.model.backbone == DEFAULT_BACKBONE
    assert recipe.data.source == "cornell-movie-review-data/rotten_tomatoes"
    assert recipe.training["output_dir"] == "runs/base"
    assert recipe.training["eval_strategy"] == "epoch"
    assert recipe.training["average_tokens_across_devices"] is False


#: The TRAINING_DEFAULTS keys each shipped recipe sets to another value, on purpose. A changed
#: default that a recipe relied on (or restated) shows up here instead of moving it silently.
DIFFERS_FROM_TRAINING_DEFAULTS = {
    "base.yaml": set(),
    "distilbert.yaml": {
        "output_dir",
        "num_train_epochs",
        "learning_rate",
        "dataloader_num_workers",
    },
    "long_reviews.yaml": {"output_dir", "num_train_epochs"},
    "pipeline.yaml": {"output_dir", "save_total_limit", "num_train_epochs", "learning_rate"},
    "study.yaml": {"output_dir", "save_total_limit"},
    "sweep.yaml": {"output_dir", "save_total_limit", "num_train_epochs", "learning_rate"},
}


def test_every_shipped_recipe_is_listed() -> None:
    assert sorted(DIFFERS_FROM_TRAINING_DEFAULTS) == [p.name for p in RECIPES]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_each_recipe_leaves_the_training_defaults_only_where_it_means_to(path: Path) -> None:
    training = load_recipe(path).training
    differs = {key for key, value in TRAINING_DEFAULTS.items() if training[key] != value}
    assert differs == DIFFERS_FROM_TRAINING_DEFAULTS[path.name]


def test_base_recipe_restates_each_training_default_or_omits_it() -> None:
    """The defaults and recipes/base.yaml cannot drift apart: a key both name has one value."""
    stated = read_recipe_file(BASE)["training"]
    typed = load_recipe(BASE).training
    disagree = {
        key: {"TRAINING_DEFAULTS": default, "base.yaml": typed[key]}
        for key, default in TRAINING_DEFAULTS.items()
        if key in stated and typed[key] != default
    }
    assert disagree == {}


def test_the_full_data_study_searches_around_the_base_recipe_as_shipped() -> None:
    """recipes/study.yaml is recipes/base.yaml plus a sweep: section (and its own directory), so
    a trial with the base recipe's values is the base recipe."""
    base, study = load_recipe(BASE), load_recipe(REPO / "recipes" / "study.yaml")
    own = {"output_dir", "save_total_limit"}
    assert study.model == base.model
    assert study.data == base.data
    assert study.early_stopping == base.early_stopping
    assert {k: v for k, v in study.training.items() if k not in own} == {
        k: v for k, v in base.training.items() if k not in own
    }
    assert study.data.max_train_samples is None  # the whole training split
    assert study.sweep is not None and study.sweep.evals_per_epoch == 1  # as the recipe evaluates


def test_distilbert_recipe_loads() -> None:
    recipe = load_recipe(REPO / "recipes" / "distilbert.yaml")
    assert recipe.model.backbone == "distilbert-base-uncased"
    assert recipe.tracking.wandb is True


def test_overrides_are_typed_by_the_schema() -> None:
    recipe = load_recipe(
        BASE,
        [
            "training.learning_rate=3e-5",
            "data.max_train_samples=500",
            "training.num_train_epochs=1",
            "model.trust_remote_code=false",
            "data.label_names=[neg, pos]",
            "training.bf16=true",
        ],
    )
    assert recipe.training["learning_rate"] == pytest.approx(3e-5)
    assert isinstance(recipe.training["learning_rate"], float)
    assert recipe.data.max_train_samples == 500
    assert recipe.training["num_train_epochs"] == 1.0
    assert recipe.data.label_names == ["neg", "pos"]
    assert recipe.training["bf16"] is True


def test_defaults_fill_a_sparse_recipe() -> None:
    recipe = recipe_from_dict({"training": {"learning_rate": 1e-4}})
    assert recipe.training["learning_rate"] == 1e-4
    assert recipe.training["metric_for_best_model"] == TRAINING_DEFAULTS["metric_for_best_model"]
    assert recipe.model.max_length == 64


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(BASE, ["training.learning_rate=2e-5", "data.max_eval_samples=10"])
    path = save_recipe(recipe, tmp_path / "recipe.yaml")
    assert load_recipe(path) == recipe


@pytest.mark.parametrize(
    ("raw", "overrides", "needle"),
    [
        ({"modle": {}}, [], "unknown key 'modle'"),
        ({"model": {"max_len": 3}}, [], "model: unknown key 'max_len'"),
        ({"training": {"learning_rat": 1.0}}, [], "not a transformers.TrainingArguments field"),
        ({"model": {"max_length": "long"}}, [], "model.max_length: expected int"),
        (
            {"training": {"num_train_epochs": "two"}},
            [],
            "training.num_train_epochs: expected float",
        ),
        ({"model": {"trust_remote_code": "yes"}}, [], "expected bool"),
        ({"training": {"eval_strategy": "sometimes"}}, [], "training.eval_strategy"),
        ({"data": []}, [], "data: expected a mapping"),
        ({}, ["training.learning_rate"], "has no '='"),
        ({}, ["model.max_length=abc"], "model.max_length: expected int"),
        ({"model": {"max_length": 3}}, ["model.max_length.x=1"], "is not a section"),
        ({}, ["model.dropout=1.5"], "model.dropout must be a probability in [0, 1), got 1.5"),
        ({}, ["model.dropout=-0.1"], "model.dropout must be a probability in [0, 1)"),
    ],
)
def test_bad_recipes_name_the_problem(raw: dict, overrides: list[str], needle: str) -> None:
    with pytest.raises(SentimentError, match=None) as info:
        recipe_from_dict(raw, overrides)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone: [unclosed\n")
    with pytest.raises(SentimentError, match="not valid YAML at line"):
        load_recipe(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(SentimentError, match="must be a YAML mapping"):
        load_recipe(scalar)
