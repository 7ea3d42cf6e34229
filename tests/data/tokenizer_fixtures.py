"""Real-format tokenizers made offline, small and fast, in the exact tokenizer.json layouts the
model families ship:

- byte-level BPE trained with HF `tokenizers`' own trainer: GPT-2 style (ByteLevel
  pre-tokenizer, processor and decoder) and RoBERTa/BART style (RobertaProcessing, <mask> with
  lstrip);
- SentencePiece Unigram models trained with the `sentencepiece` wheel and converted by
  Transformers' own slow-to-fast converters (XLM-R, T5, ALBERT, DeBERTa-v2: Precompiled
  charsmap, Metaspace, their templates).

    python tests/data/tokenizer_fixtures.py OUTDIR     writes OUTDIR/<style>.json for each style

Each style's special tokens are registered the way its Transformers tokenizer class declares
them (`SPECIAL_TOKENS`), so added_tokens lists them as the released files do, and
`save_pretrained` writes a directory Transformers' pipelines load (tokenizer.json and
tokenizer_config.json). Every vocabulary has at most VOCAB_SIZE entries, so the tiny family
models (vocab 1000) take any id. The text is the docstring corpus every test uses
(tsrunner.sample_text).
"""

from __future__ import annotations

import functools
import importlib
import io
import sys
import tempfile
import types
from pathlib import Path

VOCAB_SIZE = 1000
STYLES = ("gpt2", "roberta", "xlmr", "t5", "albert", "debertav2")


def _corpus() -> list[str]:
    from tsrunner.sample_text import lines

    return list(lines())


def _byte_level_bpe(roberta: bool):
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if roberta else ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 1 if roberta else VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    if roberta:
        tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False)])
        tokenizer.post_processor = processors.RobertaProcessing(
            ("</s>", tokenizer.token_to_id("</s>")),
            ("<s>", tokenizer.token_to_id("<s>")),
            trim_offsets=True,
            add_prefix_space=False,
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


# SentencePiece training settings and the attributes the converter reads from the slow
# tokenizer, per style; vocab sizes leave room for what the converter adds.
_SPM = {
    # the converter adds <pad> and <mask> to SentencePiece's pieces
    "xlmr": ("XLMRobertaConverter", {"vocab_size": VOCAB_SIZE - 2}, {}),
    "t5": (
        "T5Converter",
        {"vocab_size": VOCAB_SIZE - 10, "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1},
        {"_extra_ids": 10},
    ),
    "albert": (
        "AlbertConverter",
        {
            "pad_id": 0,
            "unk_id": 1,
            "bos_id": -1,
            "eos_id": -1,
            "control_symbols": ["[CLS]", "[SEP]", "[MASK]"],
        },
        {"keep_accents": False, "do_lower_case": True},
    ),
    "debertav2": (
        "DebertaV2Converter",
        {
            "pad_id": 0,
            "pad_piece": "[PAD]",
            "unk_id": 1,
            "unk_piece": "[UNK]",
            "bos_id": -1,
            "eos_id": -1,
            "control_symbols": ["[CLS]", "[SEP]", "[MASK]"],
        },
        {"split_by_punct": False, "do_lower_case": False},
    ),
}


def _sentencepiece_unigram(style: str, workdir: Path):
    import sentencepiece

    converters = importlib.import_module("transformers.convert_slow_tokenizer")
    converter_name, training, attributes = _SPM[style]
    model = io.BytesIO()
    settings = {
        "vocab_size": VOCAB_SIZE,
        "model_type": "unigram",
        "character_coverage": 0.9995,
        "minloglevel": 2,
        "num_threads": 1,
        **training,
    }
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()), model_writer=model, **settings
    )
    path = workdir / f"{style}.model"
    path.write_bytes(model.getvalue())
    # What the converter reads from a slow tokenizer: the model file, a few settings and, for
    # templates, the ids of special tokens (answered from the converted vocabulary).
    slow = types.SimpleNamespace(vocab_file=str(path), **attributes)
    converter_class = getattr(converters, converter_name)
    converter = converter_class(slow)
    ids = {piece: i for i, (piece, _) in enumerate(converter.vocab(converter.proto))}
    slow.convert_tokens_to_ids = ids.__getitem__
    return converter.converted()


def _added(content: str, lstrip: bool = False):
    from tokenizers import AddedToken

    return AddedToken(content, lstrip=lstrip, rstrip=False, normalized=False, special=True)


def _special_tokens(style: str) -> dict:
    """The special tokens each family's Transformers tokenizer class declares."""
    roberta = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": _added("<mask>", lstrip=True),
    }
    return {
        "gpt2": {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
        },
        "roberta": roberta,
        "xlmr": roberta,
        "t5": {
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "additional_special_tokens": [f"<extra_id_{i}>" for i in range(10)],
        },
        "albert": {
            "bos_token": "[CLS]",
            "eos_token": "[SEP]",
            "sep_token": "[SEP]",
            "cls_token": "[CLS]",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": _added("[MASK]", lstrip=True),
        },
        "debertav2": {
            "bos_token": "[CLS]",
            "eos_token": "[SEP]",
            "sep_token": "[SEP]",
            "cls_token": "[CLS]",
            "unk_token": "[UNK]",
            "pad_token": "[PAD]",
            "mask_token": "[MASK]",
        },
    }[style]


@functools.cache
def _trained(style: str) -> str:
    if style in ("gpt2", "roberta"):
        return _byte_level_bpe(roberta=style == "roberta").to_str()
    if style in _SPM:
        with tempfile.TemporaryDirectory() as workdir:
            return _sentencepiece_unigram(style, Path(workdir)).to_str()
    raise ValueError(f"unknown tokenizer style {style!r}; expected one of {STYLES}")


def transformers_tokenizer(style: str, max_length: int | None = None):
    """Style `style` as a Transformers fast tokenizer with its family's special tokens."""
    import tokenizers
    import transformers

    settings = {"model_max_length": max_length} if max_length else {}
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer.from_str(_trained(style)),
        **_special_tokens(style),
        **settings,
    )


@functools.cache
def tokenizer_json(style: str) -> str:
    """The tokenizer.json text of `style` (one of STYLES), special tokens registered."""
    return transformers_tokenizer(style).backend_tokenizer.to_str()


def save_pretrained(style: str, directory: Path, max_length: int | None = None) -> None:
    """Writes `style`'s tokenizer.json and tokenizer_config.json into a model directory."""
    transformers_tokenizer(style, max_length).save_pretrained(directory)


def encoding_fields(encoding) -> tuple:
    """What a tokenizer test compares of an encoding (native or HF): ids, type ids, attention
    mask, tokens and (character) offsets."""
    return (
        list(encoding.ids),
        list(encoding.type_ids),
        list(encoding.attention_mask),
        list(encoding.tokens),
        [tuple(offset) for offset in encoding.offsets],
    )


def main(argv: list[str]) -> None:
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for style in STYLES:
        (out / f"{style}.json").write_text(tokenizer_json(style), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
