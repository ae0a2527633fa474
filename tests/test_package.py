"""The package's public names: imported on first use, and `sentiment` starts without torch."""

from __future__ import annotations

import subprocess
import sys

import sentiment_hf


def test_cli_starts_without_the_heavy_libraries() -> None:
    """`sentiment --help` and usage errors must not wait for torch/transformers/datasets, nor
    for scikit-learn, SciPy or pandas (a second each on a slow CPU)."""
    heavy = ("torch", "transformers", "datasets", "sklearn", "scipy", "pandas")
    code = (
        "import sys, sentiment_hf.cli, sentiment_hf.errors; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_public_names_resolve_to_their_objects() -> None:
    import sentiment_hf.training.train  # the function's module; importing it rebinds nothing
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.training.train import train

    assert sentiment_hf.train is train and callable(sentiment_hf.train)
    assert sentiment_hf.Predictor is Predictor
    for name in sentiment_hf.__all__:
        obj = getattr(sentiment_hf, name)
        assert getattr(obj, "__name__", name) == name, name
    assert set(sentiment_hf.__all__) <= set(dir(sentiment_hf))
    assert sorted(sentiment_hf.__all__) == sorted(sentiment_hf._EXPORTS)


def test_no_submodule_shares_a_public_name() -> None:
    """A submodule named like a public name would replace it on import (``sentiment_hf.train``
    was one until the module became ``sentiment_hf.training.train``)."""
    import importlib.util

    clashes = [n for n in sentiment_hf.__all__ if importlib.util.find_spec(f"sentiment_hf.{n}")]
    assert clashes == []


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        sentiment_hf.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("sentiment_hf.no_such_name did not raise")


def test_subpackages_resolve_as_attributes_without_an_import() -> None:
    """The stage entries the docs name (`sentiment_hf.sweep.sweep`, `sentiment_hf.serve.create_app`,
    `sentiment_hf.monitoring.detect_drift`, ...) work as attribute chains from a bare
    `import sentiment_hf`, in a fresh process (no import cycle, no earlier import helping)."""
    code = (
        "import sentiment_hf as s; "
        "fns = [s.sweep.sweep, s.export.export_onnx, s.hub.push_to_hub, s.serve.create_app, "
        "s.monitoring.detect_drift, s.evaluation.fit_policy, s.datacheck.check_source]; "
        "print([f.__name__ for f in fns])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [
        "['sweep',", "'export_onnx',", "'push_to_hub',", "'create_app',", "'detect_drift',",
        "'fit_policy',", "'check_source']",
    ]  # fmt: skip
    try:
        sentiment_hf._no_such_module  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("a private name resolved")
