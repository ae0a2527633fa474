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

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the API reference
    from sentiment_hf.batch_predict import BatchResult, predict_file
    from sentiment_hf.data import SentimentData, load_splits, read_rt_polarity
    from sentiment_hf.datacheck import DataReport, check_source
    from sentiment_hf.errors import SentimentError
    from sentiment_hf.evaluation import EvalReport, evaluate_model
    from sentiment_hf.explanation import Explainer, Explanation, explain
    from sentiment_hf.export import export_onnx
    from sentiment_hf.hub import push_to_hub
    from sentiment_hf.modeling import resolve_backbone
    from sentiment_hf.predict import Prediction, Predictor
    from sentiment_hf.recipe import Recipe, load_recipe, recipe_from_dict
    from sentiment_hf.training import TrainResult, train

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BatchResult": "batch_predict",
    "DataReport": "datacheck",
    "EvalReport": "evaluation",
    "Explainer": "explanation",
    "Explanation": "explanation",
    "Prediction": "predict",
    "Predictor": "predict",
    "Recipe": "recipe",
    "SentimentData": "data",
    "SentimentError": "errors",
    "TrainResult": "training",
    "check_source": "datacheck",
    "evaluate_model": "evaluation",
    "explain": "explanation",
    "export_onnx": "export",
    "load_recipe": "recipe",
    "load_splits": "data",
    "predict_file": "batch_predict",
    "push_to_hub": "hub",
    "read_rt_polarity": "data",
    "recipe_from_dict": "recipe",
    "resolve_backbone": "modeling",
    "train": "training",
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


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use; a subpackage or module of the
    library (``sentiment_hf.sweep``, ``sentiment_hf.serve``, ...) is imported on first use too,
    as ``import sentiment_hf.sweep`` would."""
    module = _EXPORTS.get(name)
    if module is None:
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
