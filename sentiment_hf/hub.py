"""Stage a run directory for the Hugging Face Hub, write its model card and upload it.

The staged folder holds exactly what is uploaded: safetensors weights, the tokenizer, the config
with label names, the resolved recipe, the run's metrics and a ``README.md`` model card whose
YAML metadata (license, datasets, base_model, pipeline_tag, model-index) comes from the run's own
``recipe.yaml`` and ``metrics.json``. Pickled files (``training_args.bin``, optimizer state,
checkpoints) are never staged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentiment_hf.errors import SentimentError
from sentiment_hf.modeling import PACKAGED_BACKBONES, hub_offline
from sentiment_hf.predict import check_model_dir

log = logging.getLogger(__name__)

RT_DATASET = "cornell-movie-review-data/rotten_tomatoes"
DEFAULT_LICENSE = "apache-2.0"
CARD_FILE = "README.md"
#: Run-directory files copied as they are (the tokenizer is re-saved by transformers).
COPIED = ("config.json", "recipe.yaml", "metrics.json")
SPLITS = ("train", "validation", "test")
NA = "n/a"
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "f1_macro": "Macro F1",
}


@dataclass
class StagedFolder:
    """A folder ready to upload and the files in it (relative paths)."""

    path: Path
    files: list[str]
    card: str
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class PushResult:
    """What :func:`push_to_hub` staged and, unless a dry run, where it went."""

    repo_id: str
    staged: StagedFolder
    uploaded: bool = False
    url: str | None = None
    commit: dict[str, Any] = field(default_factory=dict)


def check_repo_id(repo_id: str) -> str:
    """Raise a clear error unless ``repo_id`` is a valid ``ORG/NAME`` model repository id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise SentimentError(
            f"invalid repo id {repo_id!r}: write it as ORG/NAME (or USER/NAME), e.g. "
            "my-org/minilm-rt-sentiment"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).splitlines()[0]
        raise SentimentError(
            f"invalid repo id {repo_id!r}: {reason}; use letters, digits, '-', '_' and '.' "
            "in ORG/NAME"
        ) from None
    return repo_id


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def hub_dataset(source: str | None) -> str | None:
    """The hub dataset id a run's ``data.source`` stands for, or None for private local files.

    The raw Cornell rt-polarity directory reproduces the hub's rotten_tomatoes splits exactly.
    """
    if not source:
        return None
    path = Path(source).expanduser()
    if path.is_dir() and (path / "rt-polarity.pos").is_file():
        return RT_DATASET
    if path.exists() or source.startswith((".", "/", "~")):
        return None
    return source


def hub_base_model(backbone: str | None) -> str | None:
    """The hub id of the backbone, or None when it was a local folder."""
    if not backbone:
        return None
    if backbone in PACKAGED_BACKBONES:
        return "sentence-transformers/all-MiniLM-L6-v2"
    if Path(backbone).expanduser().exists() or backbone.startswith((".", "/", "~")):
        return None
    return backbone if backbone.count("/") == 1 else None


def _eval_results(metrics: dict[str, Any], dataset: str | None, source: str) -> list[Any]:
    from huggingface_hub import EvalResult

    dataset_type = dataset or "local"
    dataset_name = "Rotten Tomatoes" if dataset == RT_DATASET else (dataset or Path(source).name)
    results = []
    for prefix, split in (("test", "test"), ("eval", "validation")):
        for key, name in METRIC_NAMES.items():
            value = metrics.get(f"{prefix}_{key}")
            if value is None:
                continue
            results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name="Sentiment Analysis",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=split,
                    metric_type=key,
                    metric_name=f"{name} ({split})",
                    metric_value=round(float(value), 4),
                )
            )
    return results


def _results_table(metrics: dict[str, Any]) -> str:
    rows = ["| split | samples | " + " | ".join(METRIC_NAMES.values()) + " |"]
    rows.append("|---" * (len(METRIC_NAMES) + 2) + "|")
    for prefix, split in (("eval", "validation"), ("test", "test")):
        values = [metrics.get(f"{prefix}_{key}") for key in METRIC_NAMES]
        if all(v is None for v in values):
            continue
        cells = [NA if v is None else f"{float(v):.4f}" for v in values]
        rows.append(f"| {split} | {{n_{prefix}}} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def build_model_card(model_dir: str | Path, repo_id: str, license: str = DEFAULT_LICENSE) -> str:
    """The ``README.md`` model card of a run: YAML metadata from its real metrics, then a body."""
    from huggingface_hub import ModelCardData

    path = check_model_dir(model_dir)
    metrics = _read_json(path / "metrics.json")
    if not metrics:
        raise SentimentError(
            f"{str(path)!r} has no metrics.json, so the model card would have no results; "
            "pass a run directory that `sentiment train` finished"
        )
    recipe = _read_yaml(path / "recipe.yaml")
    manifest = _read_json(path / "manifest.json")
    config = _read_json(path / "config.json")
    parity = _read_json(path / "export_parity.json")
    model, data, training = (
        recipe.get("model", {}),
        recipe.get("data", {}),
        recipe.get("training", {}),
    )
    source = str(data.get("source") or manifest.get("data_source") or "")
    dataset = hub_dataset(source)
    base_model = hub_base_model(model.get("backbone"))
    labels = [config["id2label"][k] for k in sorted(config["id2label"], key=int)]
    name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=name,
        license=license,
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["sentiment-analysis", "text-classification", "sentiment-hf"],
        base_model=base_model,
        datasets=[dataset] if dataset else None,
        metrics=["accuracy", "f1"],
        eval_results=_eval_results(metrics, dataset, source),
    )
    sizes = manifest.get("split_sizes", {})
    table = _results_table(metrics).format(
        n_eval=sizes.get("validation", NA), n_test=sizes.get("test", NA)
    )
    data_line = (
        f"[{dataset}](https://huggingface.co/datasets/{dataset})" if dataset else "a local data set"
    )
    recipe_rows = [
        ("backbone", base_model or f"local folder `{Path(str(model.get('backbone'))).name}`"),
        ("max_length (tokens)", model.get("max_length")),
        ("data", dataset or source),
        ("train / validation / test", " / ".join(str(sizes.get(s, NA)) for s in SPLITS)),
        ("epochs", training.get("num_train_epochs")),
        ("learning rate", training.get("learning_rate")),
        ("batch size (per device)", training.get("per_device_train_batch_size")),
        ("weight decay", training.get("weight_decay")),
        ("warmup", training.get("warmup_steps", training.get("warmup_ratio"))),
        ("seed", training.get("seed")),
        ("world size", manifest.get("world_size")),
        ("training time (s)", manifest.get("train_runtime_s")),
    ]
    recipe_table = "\n".join(
        ["| setting | value |", "|---|---|"]
        + [f"| {k} | {v} |" for k, v in recipe_rows if v not in (None, "")]
    )
    onnx_section = ""
    if parity:
        lines = ["| file | max abs logit diff | argmax agreement | accuracy |", "|---|---|---|---|"]
        lines.append(f"| PyTorch (reference) | - | - | {parity['torch']['accuracy']:.4f} |")
        for key in ("onnx", "onnx-int8"):
            if key in parity:
                row = parity[key]
                lines.append(
                    f"| {row['file']} | {row['max_abs_logit_diff']:.2e} | "
                    f"{row['argmax_agreement_pct']:.2f} % | {row['accuracy']:.4f} |"
                )
        onnx_section = (
            "\n### ONNX export parity\n\n"
            f"Checked on {parity['samples']} {parity['split']} samples by `sentiment export` "
            "(the ONNX files are not part of this upload; re-create them with that command).\n\n"
            + "\n".join(lines)
            + "\n"
        )
    body = f"""
# {name}

A binary sentiment classifier ({", ".join(labels)}) fine-tuned from
{f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a local backbone"}
on {data_line} with the `sentiment_hf` library and the Hugging Face Trainer.

## Intended use

Classify the polarity of short English opinion text, such as one-sentence movie review snippets.
It returns one of the labels `{"`, `".join(labels)}` with a probability. Good for analytics,
triage and demos over text like its training data; not for decisions about people.

## Training recipe

The full resolved recipe is in `recipe.yaml` in this repository.

{recipe_table}

## Evaluation results

Measured by the training run on held-out splits (`metrics.json`):

{table}
{onnx_section}
## Limitations

- Trained on short English movie-review sentences; accuracy drops on other domains, long
  documents (input is truncated to {model.get("max_length", "max_length")} tokens), other languages,
  sarcasm, and mixed or neutral sentiment — it always answers with one of its labels.
- Probabilities are not calibrated; do not read 0.9 as "90 % sure".
- Biases of the backbone's pre-training data and of the review data carry over.

## How to use

With `transformers.pipeline`:

```python
from transformers import pipeline

classifier = pipeline("text-classification", model="{repo_id}")
classifier("a gorgeous, witty, seductive movie.")
```

With `sentiment_hf` (batched, length-sorted; `sentiment export` adds an ONNX backend):

```python
from huggingface_hub import snapshot_download
from sentiment_hf import Predictor

predictor = Predictor(snapshot_download("{repo_id}"))
predictor.predict(["a gorgeous, witty, seductive movie."])
```

```bash
hf download {repo_id} --local-dir {name}
sentiment predict {name} "a gorgeous, witty, seductive movie."
```
"""
    return f"---\n{card_data.to_yaml()}\n---\n{body}"


def _staged_weights(path: Path) -> list[Path]:
    weights = sorted(path.glob("model*.safetensors"))
    index = path / "model.safetensors.index.json"
    return weights + ([index] if index.is_file() else [])


def stage_for_hub(
    model_dir: str | Path,
    repo_id: str,
    stage_dir: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
) -> StagedFolder:
    """Write exactly the files to upload into ``stage_dir`` (a new temp folder when None)."""
    from transformers import AutoTokenizer

    path = check_model_dir(model_dir)
    check_repo_id(repo_id)
    card = build_model_card(path, repo_id, license=license)
    if stage_dir is None:
        out = Path(tempfile.mkdtemp(prefix="sentiment-hub-"))
    else:
        out = Path(stage_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SentimentError(
                f"--stage-dir {str(out)!r} exists and is not empty; pass a new or empty folder"
            )
        if out.resolve() == path.resolve():
            raise SentimentError("--stage-dir must differ from MODEL_DIR")
        out.mkdir(parents=True, exist_ok=True)
    for src in _staged_weights(path):
        shutil.copy2(src, out / src.name)
    for name in COPIED:
        if (path / name).is_file():
            shutil.copy2(path / name, out / name)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    (out / CARD_FILE).write_text(card, encoding="utf-8")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    sizes = {name: (out / name).stat().st_size for name in files}
    return StagedFolder(out, files, card, sizes)


def _token() -> str:
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SentimentError(
            "no Hugging Face token: set HF_TOKEN or log in once with `hf auth login`"
        )
    return token


def push_to_hub(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    stage_dir: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
) -> PushResult:
    """Stage ``model_dir`` with its model card and upload it to ``repo_id`` on the Hub.

    ``dry_run`` stages and returns without touching the network. Offline (``HF_HUB_OFFLINE``)
    without ``dry_run`` is an error. The token comes from ``HF_TOKEN`` or a saved login and is
    never printed.
    """
    check_model_dir(model_dir)
    check_repo_id(repo_id)
    if not dry_run and hub_offline():
        raise SentimentError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it to push, or pass "
            "--dry-run to only stage the folder"
        )
    token = None if dry_run else _token()
    staged = stage_for_hub(model_dir, repo_id, stage_dir=stage_dir, license=license)
    result = PushResult(repo_id=repo_id, staged=staged)
    if dry_run:
        return result
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=staged.path,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {Path(model_dir).name} with sentiment_hf",
        )
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = {
            401: "the token is invalid or expired; log in again with `hf auth login`",
            403: f"the token may not write to {repo_id}; use a write token for that namespace",
        }.get(status, "check the repo id, your token's rights and the network")
        raise SentimentError(
            f"upload to {repo_id} failed ({status or 'HTTP error'}): {hint}"
        ) from None
    except Exception as exc:  # transport errors: the HTTP client's own types, OSError
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise SentimentError(
            f"upload to {repo_id} failed: cannot reach the Hugging Face Hub "
            f"({type(exc).__name__}: {reason}); check the network and retry"
        ) from None
    result.uploaded = True
    result.url = str(url)
    result.commit = {
        "oid": getattr(commit, "oid", None),
        "url": getattr(commit, "commit_url", None),
    }
    if stage_dir is None:
        shutil.rmtree(staged.path, ignore_errors=True)
    return result
