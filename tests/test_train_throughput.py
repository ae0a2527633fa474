"""benchmarks/train_throughput.py: the FLOP model its GFLOP/s figures rest on, and its arguments.

The benchmark itself runs for ~20 minutes on the real MiniLM and is not part of the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("train_throughput")


def test_flop_model_gives_the_issue_estimate_for_minilm(bench, minilm_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(minilm_dir, num_labels=2)
    model = AutoModelForSequenceClassification.from_config(config)
    weights, layers, hidden = bench.flop_model(model)
    assert (layers, hidden) == (6, 384)
    # 6 layers x (4 x 384^2 attention + 2 x 384 x 1536 MLP) + the pooler + the 2-label head.
    assert weights == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 384 + 384 * 2
    per_sample = bench.train_flops([27], None, weights, layers, hidden)
    assert per_sample == pytest.approx(1.7e9, rel=0.05)  # "~1.7 GFLOP per sample of 27 tokens"
    # Padding a batch of two 27-token samples to 128 executes > 4.7x the useful work.
    padded = bench.train_flops([27, 27], 128, weights, layers, hidden)
    assert padded / (2 * per_sample) > 128 / 27


def test_unknown_ablation_is_a_usage_error(bench, rt_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--data", str(rt_dir), "--ablations", "c-turbo"])
    assert exc.value.code == 2
    args = bench.parse_args(["--data", str(rt_dir), "--ablations", "c-fp32,c-random"])
    names = [c.name for c in bench.configs(args.ablations.split(","), args.baselines)]
    assert names == ["a", "b", "c", "c-fp32", "c-random"]
