"""benchmarks/learning_curve.py: the points it trains, their summary and the claim queue of its
workers. The real curve (all-MiniLM-L6-v2, 500 sentences to all, 3 seeds) takes hours and is not
part of the suite; here the tiny backbone trains on 64 sentences of the real rt-polarity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, load_benchmark, tiny_recipe_overrides

from sentiment_hf import load_recipe
from sentiment_hf.hardware import cpu_has_native_bf16


@pytest.fixture(scope="module")
def lc():
    return load_benchmark("learning_curve")


def _tiny_recipe(tmp_path: Path, backbone: Path, rt_dir: Path) -> Path:
    """recipes/base.yaml on the tiny backbone, written out as a recipe file."""
    overrides = [
        o
        for o in tiny_recipe_overrides(backbone, rt_dir, tmp_path / "unused")
        if not o.startswith("data.max_train_samples")
    ]
    recipe = load_recipe(REPO / "recipes" / "base.yaml", overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(recipe.to_yaml())
    return path


def test_points_train_once_and_the_report_sums_them(
    lc, tmp_path: Path, tiny_backbone: Path, rt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(lc.ARMS, "recipe-min-steps", ["training.min_steps=8"])
    recipe = _tiny_recipe(tmp_path, tiny_backbone, rt_dir)
    out = tmp_path / "lc.json"
    argv = ["--data", str(rt_dir), "--recipe", str(recipe), "--out", str(out)]
    argv += ["--work", str(tmp_path / "work"), "--sizes", "64", "--seeds", "1", "2"]
    argv += ["--arms", "recipe", "recipe-min-steps", "baseline"]
    assert lc.main(argv) == 0
    points = json.loads(out.read_text())
    # 64 sentences in batches of 32 for 2 epochs = 4 steps < min_steps 8: the data is repeated
    assert points["recipe-min-steps/64/s1"]["optimizer_steps"] == 8
    assert points["recipe-min-steps/64/s1"]["train_repeats"] == 2
    assert points["recipe/64/s1"]["optimizer_steps"] == 4
    assert points["baseline/64/s2"]["optimizer_steps"] == 24  # 3 epochs of 8 batches of 8
    # The point records what the machine changed: the recipe's bf16 is dropped on a CPU without
    # native bf16 (then the figures are fp32 ones); the baseline asks for fp32 itself.
    changed = {c["field"] for c in points["recipe/64/s1"]["effective_changes"]}
    assert ("bf16" in changed) == (not cpu_has_native_bf16())
    assert "bf16" not in {c["field"] for c in points["baseline/64/s2"]["effective_changes"]}
    assert sorted(points) == sorted(
        f"{arm}/64/s{seed}" for arm in ("recipe", "recipe-min-steps", "baseline") for seed in (1, 2)
    )
    assert not (tmp_path / "work" / "recipe-64-s1").exists()  # run directories are dropped
    assert out.with_suffix(".png").stat().st_size > 0
    rows = {r["arm"]: r for r in lc.summarise(points)}
    accs = [points[f"baseline/64/s{s}"]["test_accuracy"] for s in (1, 2)]
    assert rows["baseline"]["mean"] == pytest.approx(sum(accs) / 2)
    assert rows["baseline"]["seeds"] == [1, 2]
    before = out.read_text()
    assert lc.main(argv) == 0  # nothing left to train: the file is unchanged
    assert out.read_text() == before


def test_a_claimed_point_is_left_to_its_worker(lc, tmp_path: Path) -> None:
    path = tmp_path / "recipe-500-s7"
    assert lc.claim(path) is True
    assert lc.claim(path) is False


def test_recipe_batch_halves_the_batch_until_min_steps(lc) -> None:
    assert lc.small_batch(500)[1:] == [
        "training.per_device_train_batch_size=8",
        "training.learning_rate=6.5e-05",
    ]
    assert lc.small_batch(1000)[1] == "training.per_device_train_batch_size=16"
    assert lc.small_batch(2000)[1] == "training.per_device_train_batch_size=32"


def test_min_steps_is_active_up_to_1984_sentences_in_the_base_recipe(lc) -> None:
    """4 epochs x ceil(n / 32) batches reach 250 steps from 1,985 sentences on; the shipped
    recipe itself leaves min_steps off."""
    base = REPO / "recipes" / "base.yaml"
    assert "min_steps" not in yaml.safe_load(base.read_text())["training"]
    assert [lc.min_steps_active(base, n) for n in (500, 1984, 1985, 0)] == [
        True,
        True,
        False,
        False,
    ]


def test_markdown_names_every_arm_and_size(lc) -> None:
    points = {
        "recipe/500/s1": {
            "arm": "recipe",
            "size": 500,
            "seed": 1,
            "train_examples": 500,
            "validation_accuracy": 0.7,
            "test_accuracy": 0.75,
            "optimizer_steps": 252,
            "wall_s": 60.0,
        },
        "recipe/500/s2": {
            "arm": "recipe",
            "size": 500,
            "seed": 2,
            "train_examples": 500,
            "validation_accuracy": 0.8,
            "test_accuracy": 0.77,
            "optimizer_steps": 252,
            "wall_s": 120.0,
        },
    }
    table = lc.markdown(lc.summarise(points))
    assert "| 500 | recipe | 2 | 75.00, 77.00 | 76.00 ± 1.41 | 75.00 | 252 | 1.5 min |" in table
