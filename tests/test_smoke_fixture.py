from pathlib import Path

from conftest import assert_split_metrics_consistent


def test_tiny_run_writes_a_loadable_run_directory(tiny_run: Path) -> None:
    import json

    from transformers import AutoModelForSequenceClassification

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {"eval_accuracy", "test_accuracy", "test_f1"} <= set(metrics)
    assert_split_metrics_consistent(metrics, "test", 64)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_run)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    for name in ("recipe.yaml", "manifest.json", "model.safetensors", "tokenizer.json"):
        assert (tiny_run / name).is_file(), name
