"""The data check (``sentiment data check SOURCE`` and the start of ``sentiment train``).

:mod:`~sentiment_hf.datacheck.checks` defines the findings and which of them are errors;
:mod:`~sentiment_hf.datacheck.source` runs them on a data source or on loaded splits.
"""

from sentiment_hf.datacheck.checks import DataReport, Finding, SplitStats, check_splits
from sentiment_hf.datacheck.source import check_loaded, check_source, gate, load_tokenizer

__all__ = [
    "DataReport",
    "Finding",
    "SplitStats",
    "check_loaded",
    "check_source",
    "check_splits",
    "gate",
    "load_tokenizer",
]
