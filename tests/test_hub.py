"""push-to-hub: the staged folder, the model card (parsed with huggingface_hub), the upload call.

The Hugging Face Hub cannot be reached from this machine or CI, so the upload is checked at the
``huggingface_hub.HfApi`` boundary with a recording fake; staging, the card, token lookup and the
offline / bad-input errors all run for real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from sentiment_hf import SentimentError
from sentiment_hf.hub.push import RT_DATASET, build_model_card, push_to_hub, stage_for_hub

REPO_ID = "acme/minilm-rt-sentiment"
TOKEN = "hf_test_secret_token_never_printed"


def _run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from sentiment_hf.cli import main

    monkeypatch.setattr(sys, "argv", ["sentiment", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0


@pytest.fixture(scope="module")
def staged(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return stage_for_hub(tiny_run, REPO_ID, stage_dir=tmp_path_factory.mktemp("stage") / "out")


def test_stage_holds_exactly_the_upload(staged: Any, tiny_run: Path) -> None:
    files = set(staged.files)
    assert {"model.safetensors", "config.json", "recipe.yaml", "metrics.json", "README.md"} <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    # no pickles, checkpoints or trainer state leave the machine
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    assert not any(f.startswith("checkpoint-") for f in files)
    assert "trainer_state.json" not in files
    config = json.loads((staged.path / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert (staged.path / "model.safetensors").read_bytes() == (
        tiny_run / "model.safetensors"
    ).read_bytes()
    assert set(staged.sizes) == files


def test_staged_folder_loads_as_a_pipeline(staged: Any) -> None:
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(staged.path))
    out = classifier("a gorgeous, witty, seductive movie.")
    assert out[0]["label"] in {"neg", "pos"}


def test_card_metadata_parses_with_modelcard_and_carries_real_metrics(
    staged: Any, tiny_run: Path
) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(staged.path / "README.md")
    data = card.data.to_dict()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "text-classification"
    assert data["datasets"] == [RT_DATASET]  # the raw Cornell files are the hub data set
    assert data["library_name"] == "transformers"
    # the tiny fixture's backbone is a local folder: no hub id to claim as base_model
    assert "base_model" not in data
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy")] == round(metrics["test_accuracy"], 4)
    assert results[("test", "f1")] == round(metrics["test_f1"], 4)
    assert results[("validation", "accuracy")] == round(metrics["eval_accuracy"], 4)
    assert all(r.task_type == "text-classification" for r in card.data.eval_results)
    assert all(r.dataset_type == RT_DATASET for r in card.data.eval_results)
    body = card.text
    for heading in (
        "## Intended use",
        "## Training recipe",
        "## Evaluation results",
        "## Limitations",
        "## How to use",
    ):
        assert heading in body
    assert f'pipeline("text-classification", model="{REPO_ID}")' in body
    assert "from sentiment_hf import Predictor" in body
    assert f"| test | 64 | {metrics['test_accuracy']:.4f} |" in body


def test_card_names_the_packaged_backbone_as_base_model(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from huggingface_hub import ModelCard

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["model"]["backbone"] = "sentence-transformers/all-MiniLM-L6-v2"
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run / "export_parity.json").write_text(
        json.dumps(
            {
                "split": "test",
                "samples": 1066,
                "torch": {"accuracy": 0.8},
                "onnx": {
                    "file": "model.onnx",
                    "max_abs_logit_diff": 1e-6,
                    "argmax_agreement_pct": 100.0,
                    "accuracy": 0.8,
                },
            }
        )
    )
    card = ModelCard(build_model_card(run, REPO_ID, license="mit"))
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.license == "mit"
    assert "### ONNX export parity" in card.text
    assert "| model.onnx | 1.00e-06 | 100.00 % | 0.8000 |" in card.text


def test_card_states_what_the_run_does_with_long_text_and_low_confidence(
    tiny_run: Path, tmp_path: Path
) -> None:
    """The limitations follow the run's recipe and policy: windows (the default) or truncation,
    an abstain band or none; never "truncated" for a windowed run or "always one of its labels"
    for one that abstains."""
    import shutil

    from huggingface_hub import ModelCard

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    (run / "policy.json").write_text(json.dumps({"temperature": 1.0, "min_confidence": 0.6}))
    text = ModelCard(build_model_card(run, REPO_ID)).text
    assert "in windows of whole sentences of up to 32 tokens" in text
    assert "averaged" in text and "more than 64 windows" in text
    (run / "document_rule.json").write_text(  # a fitted rule (sentiment document-rule) says so
        json.dumps(
            {
                "center": [0.0],
                "scale": [1.0],
                "coef": [[1.0]],
                "intercept": [0.0],
                "fitted_on": {"texts": 120},
                "cut": "sentences",
            }
        )
    )
    text = ModelCard(build_model_card(run, REPO_ID)).text
    assert "decided by a rule fitted on 120 labelled long texts" in text and "averaged" not in text
    (run / "document_rule.json").unlink()
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["model"]["long_text"] = {"cut": "tokens"}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    text = ModelCard(build_model_card(run, REPO_ID)).text
    assert "in windows of 32 tokens, each overlapping the next by a quarter" in text
    assert "truncated to" not in text
    assert "answers `uncertain` (abstains)" in text and "below 0.6" in text
    assert "always answers" not in text
    assert "with a probability,\nor `uncertain` when it is not confident enough." in text

    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["model"]["long_text"] = {"mode": "truncate"}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run / "policy.json").write_text(json.dumps({"temperature": 1.0}))
    text = ModelCard(build_model_card(run, REPO_ID)).text
    assert "truncated to its first 32 tokens" in text and "windows" not in text
    assert "it always answers with one of its 2 labels" in text and "uncertain" not in text


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: the Hub cannot be reached from tests."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    tokens: ClassVar[list[str | None]] = []

    def __init__(self, token: str | None = None, **_: Any) -> None:
        RecordingHfApi.tokens.append(token)

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> Any:
        folder = Path(kwargs["folder_path"])
        kwargs["files"] = sorted(p.name for p in folder.iterdir())  # what would be sent
        self.calls.append(("upload_folder", kwargs))
        return type("Commit", (), {"oid": "abc123", "commit_url": "https://hub/commit/abc123"})()


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> type[RecordingHfApi]:
    import huggingface_hub

    RecordingHfApi.calls = []
    RecordingHfApi.tokens = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    # conftest makes the whole suite offline; these tests act as an online session would
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return RecordingHfApi


def test_push_uploads_the_staged_folder_through_hfapi(
    tiny_run: Path, fake_hub: type[RecordingHfApi]
) -> None:
    result = push_to_hub(tiny_run, REPO_ID, private=True, revision="v1")
    assert result.uploaded and result.url == f"https://huggingface.co/{REPO_ID}"
    assert fake_hub.tokens == [TOKEN]
    names = [name for name, _ in fake_hub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    create, branch, upload = (kwargs for _, kwargs in fake_hub.calls)
    assert create == {"repo_id": REPO_ID, "private": True, "repo_type": "model", "exist_ok": True}
    assert branch["branch"] == "v1"
    assert upload["repo_id"] == REPO_ID and upload["revision"] == "v1"
    assert upload["files"] == result.staged.files  # exactly the staged folder
    assert not result.staged.path.exists()  # the temp stage is cleaned up after upload


def test_cli_push_never_prints_the_token(
    tiny_run: Path,
    fake_hub: type[RecordingHfApi],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run_cli(monkeypatch, "push-to-hub", str(tiny_run), "--repo-id", REPO_ID) == 0
    out, err = capsys.readouterr()
    assert f"uploaded to https://huggingface.co/{REPO_ID}" in out
    assert TOKEN not in out + err
    assert fake_hub.calls[0][1]["private"] is False


def test_missing_token_is_a_clear_error(
    tiny_run: Path, fake_hub: type[RecordingHfApi], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no saved login there
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(SentimentError, match="no Hugging Face token: set HF_TOKEN"):
        push_to_hub(tiny_run, REPO_ID)
    assert fake_hub.calls == []


def test_dry_run_stages_and_lists_without_network(
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import huggingface_hub

    def no_network(*_: Any, **__: Any) -> None:
        raise AssertionError("a dry run must not create an HfApi client")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    stage = tmp_path / "stage"
    code = _run_cli(
        monkeypatch,
        "push-to-hub",
        str(tiny_run),
        "--repo-id",
        REPO_ID,
        "--dry-run",
        "--stage-dir",
        str(stage),
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "dry run: nothing uploaded" in out
    for name in ("README.md", "model.safetensors", "config.json", "recipe.yaml"):
        assert f"  {name}\t" in out
        assert (stage / name).is_file()


def test_offline_without_dry_run_is_a_clear_error(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _run_cli(monkeypatch, "push-to-hub", str(tiny_run), "--repo-id", REPO_ID) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE is set" in err and "--dry-run" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "repo_id", ["no-namespace", "a/b/c", "acme/bad name", "acme/--x", "acme/" + "x" * 100]
)
def test_invalid_repo_id_is_a_clear_error(tiny_run: Path, repo_id: str) -> None:
    with pytest.raises(SentimentError, match=r"invalid repo id .*ORG/NAME"):
        push_to_hub(tiny_run, repo_id, dry_run=True)


def test_not_a_model_dir_and_non_empty_stage_dir_are_refused(
    tiny_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(SentimentError, match="not a trained model directory"):
        push_to_hub(tmp_path, REPO_ID, dry_run=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(SentimentError, match="not empty"):
        push_to_hub(tiny_run, REPO_ID, dry_run=True, stage_dir=busy)
    assert (busy / "keep.txt").read_text() == "mine"
