"""sentiment_hf: fine-tune, sweep, evaluate, export, serve and ship sentiment classifiers.

The public surface::

    import sentiment_hf as s
    recipe = s.load_recipe("recipes/base.yaml", ["data.source=../shared/data/rt-polarity"])
    result = s.train(recipe)
    report = s.evaluate_model(result.run_dir, split="test")
    s.Predictor(result.run_dir).predict(["a gorgeous, witty, seductive movie."])
"""

from sentiment_hf.data import SentimentData, load_splits, read_rt_polarity
from sentiment_hf.errors import SentimentError
from sentiment_hf.evaluation import EvalReport, evaluate_model
from sentiment_hf.export import export_onnx
from sentiment_hf.hub import push_to_hub
from sentiment_hf.modeling import resolve_backbone
from sentiment_hf.predict import Prediction, Predictor
from sentiment_hf.recipe import Recipe, load_recipe, recipe_from_dict
from sentiment_hf.train import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "EvalReport",
    "Prediction",
    "Predictor",
    "Recipe",
    "SentimentData",
    "SentimentError",
    "TrainResult",
    "evaluate_model",
    "export_onnx",
    "load_recipe",
    "load_splits",
    "push_to_hub",
    "read_rt_polarity",
    "recipe_from_dict",
    "resolve_backbone",
    "train",
]
