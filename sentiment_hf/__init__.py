"""sentiment_hf: fine-tune, sweep, evaluate, export, serve and ship sentiment classifiers.

The public surface::

    import sentiment_hf as s
    recipe = s.load_recipe("recipes/base.yaml", ["data.source=../shared/data/rt-polarity"])
    result = s.train(recipe)
    report = s.evaluate_model(result.run_dir, split="test")
    s.Predictor(result.run_dir).predict(["a gorgeous, witty, seductive movie."])

The names below are imported on first use, so ``import sentiment_hf`` (and every ``sentiment``
command's start, ``--help`` and usage errors included) does not pay for torch, transformers and
datasets until a command needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the API reference
    from sentiment_hf.config.recipe import Recipe, load_recipe, recipe_from_dict
    from sentiment_hf.data.load import SentimentData, load_splits, read_rt_polarity
    from sentiment_hf.datacheck import DataReport, check_source
    from sentiment_hf.errors import SentimentError
    from sentiment_hf.evaluation.evaluate import EvalReport, evaluate_model
    from sentiment_hf.export.onnx import export_onnx
    from sentiment_hf.hub.push import push_to_hub
    from sentiment_hf.inference.batch import BatchResult, predict_file
    from sentiment_hf.inference.explain import Explainer, Explanation, explain
    from sentiment_hf.inference.predictor import Prediction, Predictor
    from sentiment_hf.modeling import resolve_backbone
    from sentiment_hf.training.train import TrainResult, train

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BatchResult": "inference.batch",
    "DataReport": "datacheck",
    "EvalReport": "evaluation.evaluate",
    "Explainer": "inference.explain",
    "Explanation": "inference.explain",
    "Prediction": "inference.predictor",
    "Predictor": "inference.predictor",
    "Recipe": "config.recipe",
    "SentimentData": "data.load",
    "SentimentError": "errors",
    "TrainResult": "training.train",
    "check_source": "datacheck",
    "evaluate_model": "evaluation.evaluate",
    "explain": "inference.explain",
    "export_onnx": "export.onnx",
    "load_recipe": "config.recipe",
    "load_splits": "data.load",
    "predict_file": "inference.batch",
    "push_to_hub": "hub.push",
    "read_rt_polarity": "data.load",
    "recipe_from_dict": "config.recipe",
    "resolve_backbone": "modeling",
    "train": "training.train",
}

__all__ = [
    "BatchResult",
    "DataReport",
    "EvalReport",
    "Explainer",
    "Explanation",
    "Prediction",
    "Predictor",
    "Recipe",
    "SentimentData",
    "SentimentError",
    "TrainResult",
    "check_source",
    "evaluate_model",
    "explain",
    "export_onnx",
    "load_recipe",
    "load_splits",
    "predict_file",
    "push_to_hub",
    "read_rt_polarity",
    "recipe_from_dict",
    "resolve_backbone",
    "train",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
