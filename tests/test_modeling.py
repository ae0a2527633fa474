"""Backbone resolution: local dir → installed package → HF cache → hub (never reached offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_hf.errors import SentimentError
from sentiment_hf.modeling import build_model, resolve_backbone
from sentiment_hf.recipe import ModelConfig


def test_local_directory_wins(tiny_backbone: Path) -> None:
    assert resolve_backbone(str(tiny_backbone)) == str(tiny_backbone.resolve())


def test_packaged_minilm_resolves_offline(minilm_dir: Path) -> None:
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert Path(resolve_backbone(name)) == minilm_dir


def test_hub_cache_is_used_before_the_hub(tmp_path: Path, tiny_backbone: Path) -> None:
    # Lay out a real HF cache entry by hand (the layout snapshot_download reads offline).
    repo = tmp_path / "models--acme--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for item in tiny_backbone.iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert Path(resolve_backbone("acme/tiny-bert", cache_dir=str(tmp_path))) == snapshot


def test_unknown_backbone_offline_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SentimentError) as info:
        resolve_backbone("acme/never-downloaded", cache_dir=str(tmp_path))
    message = str(info.value)
    assert (
        "not found offline" in message
        and "huggingface-cli download acme/never-downloaded" in message
    )


def test_bad_local_paths(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match=r"has no config\.json"):
        resolve_backbone(str(tmp_path))
    with pytest.raises(SentimentError, match="does not exist"):
        resolve_backbone("./no/such/model")


def test_model_carries_label_names_and_dropout(tiny_backbone: Path) -> None:
    model = build_model(str(tiny_backbone), ["neg", "pos"], ModelConfig(dropout=0.25))
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.label2id == {"neg": 0, "pos": 1}
    assert model.config.hidden_dropout_prob == 0.25
    assert model.config.attention_probs_dropout_prob == 0.25
