"""Tiny random backbones of every supported architecture, each with a tokenizer of its own kind.

The tokenizers are trained offline with the ``tokenizers`` library on a few hundred lines of the
real rt-polarity data and wrapped in the transformers class of their architecture, so
``AutoTokenizer.from_pretrained`` loads them from the saved folder as it would a hub model's:
WordPiece for the BERT family, byte-level BPE for RoBERTa and ModernBERT, SentencePiece-style
Unigram for XLM-R, DeBERTa-v3 and ALBERT. The models are 2 layers, 32 wide, with weights drawn
10x wider than the usual 0.02 (conftest's ``tiny_backbone`` says why).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The encoder families the project supports (no page lists them yet), in matrix order.
ARCHITECTURES = (
    "bert",
    "distilbert",
    "electra",
    "roberta",
    "xlm-roberta",
    "deberta-v3",
    "albert",
    "modernbert",
)
VOCAB_SIZE = 800
HIDDEN = 32
LAYERS = 2
HEADS = 2
INTERMEDIATE = 64
POSITIONS = 130  # RoBERTa's positions start after its padding index
INIT_RANGE = 0.2


def corpus_lines(rt_dir: Path, per_class: int = 200) -> list[str]:
    """The first ``per_class`` sentences of each rt-polarity file (latin-1, split on ``\\n``:
    the data's README). Missing data fails loudly (conftest's ``rt_dir`` finds the folder)."""
    lines: list[str] = []
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        path = rt_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"real data missing: {path}")
        text = path.read_bytes().decode("latin-1")
        lines.extend(line.strip() for line in text.split("\n")[:per_class])
    return [line for line in lines if line]


# --- tokenizers ------------------------------------------------------------------------------


def _wordpiece(lines: list[str], cls: type) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        lines, trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials)
    )
    return cls(vocab=tok.get_vocab(), do_lower_case=True)


def _byte_bpe(
    lines: list[str], specials: list[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        lines,
        trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def _unigram(lines: list[str], specials: list[str], unk: str) -> list[tuple[str, float]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(
        lines,
        trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, unk_token=unk),
    )
    # special tokens first, in the order given: the ids each tokenizer class expects
    return [tuple(item) for item in json.loads(tok.to_str())["model"]["vocab"]]


def _bert_tokenizer(lines: list[str]) -> Any:
    from transformers import BertTokenizerFast

    return _wordpiece(lines, BertTokenizerFast)


def _distilbert_tokenizer(lines: list[str]) -> Any:
    from transformers import DistilBertTokenizerFast

    return _wordpiece(lines, DistilBertTokenizerFast)


def _electra_tokenizer(lines: list[str]) -> Any:
    from transformers import ElectraTokenizerFast

    return _wordpiece(lines, ElectraTokenizerFast)


def _roberta_tokenizer(lines: list[str]) -> Any:
    from transformers import RobertaTokenizerFast

    vocab, merges = _byte_bpe(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return RobertaTokenizerFast(vocab=vocab, merges=merges)


def _xlm_roberta_tokenizer(lines: list[str]) -> Any:
    from transformers import XLMRobertaTokenizerFast

    # XLM-R's fairseq order: <s> 0, <pad> 1, </s> 2, <unk> 3 (the class hardcodes unk_id=3)
    vocab = _unigram(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>")
    return XLMRobertaTokenizerFast(vocab=vocab)


def _deberta_v3_tokenizer(lines: list[str]) -> Any:
    from transformers import DebertaV2TokenizerFast

    vocab = _unigram(lines, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]")
    return DebertaV2TokenizerFast(vocab=vocab, unk_id=3, do_lower_case=False)


def _albert_tokenizer(lines: list[str]) -> Any:
    from transformers import AlbertTokenizerFast

    # ALBERT's order: <pad> 0, <unk> 1 (the class hardcodes unk_id=1), [CLS] 2, [SEP] 3
    vocab = _unigram(lines, ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>")
    return AlbertTokenizerFast(vocab=vocab)


def _modernbert_tokenizer(lines: list[str]) -> Any:
    """ModernBERT's own: byte-level BPE (OLMo's) with BERT's special tokens around each text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    vocab, merges = _byte_bpe(lines, specials)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
    )


TOKENIZERS: dict[str, Callable[[list[str]], Any]] = {
    "bert": _bert_tokenizer,
    "distilbert": _distilbert_tokenizer,
    "electra": _electra_tokenizer,
    "roberta": _roberta_tokenizer,
    "xlm-roberta": _xlm_roberta_tokenizer,
    "deberta-v3": _deberta_v3_tokenizer,
    "albert": _albert_tokenizer,
    "modernbert": _modernbert_tokenizer,
}


# --- configs ---------------------------------------------------------------------------------


def tiny_config(arch: str, vocab_size: int = VOCAB_SIZE, tokenizer: Any = None) -> Any:
    """A 2-layer, 32-wide config of ``arch`` (special-token ids from ``tokenizer`` if given)."""
    import transformers as tf

    # without a tokenizer: ids inside a small vocabulary (ModernBERT's defaults are ~50k)
    ids: dict[str, int] = {"pad_token_id": 0}
    if tokenizer is not None:
        ids = {"pad_token_id": tokenizer.pad_token_id}
    bert_like = {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
        "initializer_range": INIT_RANGE,
        **ids,
    }
    if arch == "bert":
        return tf.BertConfig(**bert_like)
    if arch == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=vocab_size,
            dim=HIDDEN,
            n_layers=LAYERS,
            n_heads=HEADS,
            hidden_dim=INTERMEDIATE,
            max_position_embeddings=POSITIONS,
            initializer_range=INIT_RANGE,
            **ids,
        )
    if arch == "electra":
        return tf.ElectraConfig(embedding_size=HIDDEN, **bert_like)
    if arch == "roberta":
        return tf.RobertaConfig(type_vocab_size=1, **bert_like)
    if arch == "xlm-roberta":
        return tf.XLMRobertaConfig(type_vocab_size=1, **bert_like)
    if arch == "deberta-v3":
        return tf.DebertaV2Config(
            type_vocab_size=0,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            position_biased_input=False,
            **bert_like,
        )
    if arch == "albert":
        return tf.AlbertConfig(embedding_size=16, **bert_like)
    if arch == "modernbert":
        cls_id, sep_id = (
            (1, 2) if tokenizer is None else (tokenizer.cls_token_id, tokenizer.sep_token_id)
        )
        ids.update(
            cls_token_id=cls_id, sep_token_id=sep_id, bos_token_id=cls_id, eos_token_id=sep_id
        )
        return tf.ModernBertConfig(
            vocab_size=vocab_size,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=POSITIONS,
            global_attn_every_n_layers=2,
            local_attention=16,
            initializer_range=INIT_RANGE,
            **ids,
        )
    raise ValueError(f"unknown architecture {arch!r}; one of {ARCHITECTURES}")


def save_tiny_backbone(arch: str, out: Path, lines: list[str] | None = None) -> Path:
    """Save a random ``arch`` encoder to ``out`` (with its own tokenizer trained on ``lines``).

    Without ``lines`` only config and weights are written (enough for ``build_model``)."""
    import torch
    from transformers import AutoModel

    tokenizer = TOKENIZERS[arch](lines) if lines is not None else None
    vocab_size = len(tokenizer) if tokenizer is not None else 64
    config = tiny_config(arch, vocab_size, tokenizer)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
