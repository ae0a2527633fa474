"""Backbone resolution: local dir → installed package → HF cache → hub (never reached offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from backbones import ARCHITECTURES, save_tiny_backbone

from sentiment_hf.config.recipe import ModelConfig
from sentiment_hf.errors import SentimentError
from sentiment_hf.modeling import build_model, resolve_backbone


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


def _dropouts(model) -> dict[str, float]:
    """Every dropout probability the model applies: each ``nn.Dropout``'s ``p`` and each float
    attribute named ``*dropout*`` that a module passes to a functional dropout (ModernBERT's
    attention), keyed by where it sits."""
    import torch

    found = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            found[name] = module.p
        for attr, value in vars(module).items():
            if "dropout" in attr and isinstance(value, float):
                found[f"{name}.{attr}"] = value
    return found


@pytest.fixture(scope="module")
def weights_only_backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arch-backbones")
    return {arch: save_tiny_backbone(arch, root / arch) for arch in ARCHITECTURES}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_model_dropout_sets_every_dropout_of_encoder_and_head(
    arch: str, weights_only_backbones: dict[str, Path]
) -> None:
    """``model.dropout`` means one thing on every architecture: each dropout of the embeddings,
    attention, feed-forward and classification head (BERT's hidden/attention names, DistilBERT's
    ``seq_classif_dropout``, ALBERT's ``classifier_dropout_prob``, DeBERTa's ``pooler_dropout``,
    ModernBERT's embedding/MLP/attention/classifier dropouts)."""
    model = build_model(
        str(weights_only_backbones[arch]), ["neg", "pos"], ModelConfig(dropout=0.25)
    )
    found = _dropouts(model)
    assert any(key.endswith(("classifier", "dropout", "drop")) for key in found), found
    assert found and {key: p for key, p in found.items() if p != 0.25} == {}
    numeric = {
        key: value
        for key, value in model.config.to_dict().items()
        if "dropout" in key and isinstance(value, float | int) and not isinstance(value, bool)
    }
    assert numeric and set(numeric.values()) == {0.25}, numeric


@pytest.mark.parametrize("arch", ["distilbert", "albert", "modernbert"])
def test_zero_dropout_turns_every_dropout_off(
    arch: str, weights_only_backbones: dict[str, Path]
) -> None:
    model = build_model(str(weights_only_backbones[arch]), ["neg", "pos"], ModelConfig(dropout=0.0))
    assert set(_dropouts(model).values()) <= {0.0}


def test_unset_dropout_keeps_the_backbones_own(weights_only_backbones: dict[str, Path]) -> None:
    model = build_model(str(weights_only_backbones["distilbert"]), ["neg", "pos"], ModelConfig())
    assert model.config.seq_classif_dropout == 0.2
    assert model.config.dropout == 0.1


def test_only_dropout_probabilities_are_set() -> None:
    """A bool named like a dropout is a switch and a ``*_prob`` that is no dropout (span masking)
    is left alone; a dropout of 1 or more is refused with the recipe key's name."""
    from transformers import BertConfig

    from sentiment_hf.modeling import dropout_names, set_dropout

    config = BertConfig(token_dropout=True, mask_time_prob=0.05, cls_dropout=0.1)
    assert sorted(dropout_names(config)) == [
        "attention_probs_dropout_prob",
        "classifier_dropout",
        "cls_dropout",
        "hidden_dropout_prob",
    ]
    set_dropout(config, 0.3)
    assert (config.token_dropout, config.mask_time_prob, config.cls_dropout) == (True, 0.05, 0.3)
    for bad in (1.0, -0.1):
        with pytest.raises(SentimentError, match=r"model\.dropout must be a probability"):
            set_dropout(config, bad)


def _transformers_records() -> tuple[list[str], object]:
    """Messages transformers logs (its loggers do not propagate to pytest's caplog)."""
    import logging

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    return messages, Keep()


def test_the_load_report_shows_only_when_more_than_the_new_head_is_missing(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    """Fine-tuning always starts from a missing head: transformers' coloured LOAD REPORT is not
    shown for it; a backbone missing encoder weights still gets the report."""
    import logging
    import shutil

    from safetensors.torch import load_file, save_file

    messages, handler = _transformers_records()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        model = build_model(str(tiny_backbone), ["neg", "pos"], ModelConfig())
        assert model.config.num_labels == 2
        assert not [m for m in messages if "LOAD REPORT" in m], messages
        damaged = Path(shutil.copytree(tiny_backbone, tmp_path / "damaged"))
        weights = load_file(damaged / "model.safetensors")
        dropped = next(k for k in weights if "encoder.layer.0" in k)
        save_file({k: v for k, v in weights.items() if k != dropped}, damaged / "model.safetensors")
        build_model(str(damaged), ["neg", "pos"], ModelConfig())
        reports = [m for m in messages if "LOAD REPORT" in m]
        assert len(reports) == 1 and "MISSING" in reports[0] and "encoder" in reports[0]
    finally:
        logger.removeHandler(handler)
