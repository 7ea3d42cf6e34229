"""Real-format tokenizers made offline, small and fast, in the exact tokenizer.json layouts the
model families ship:

- byte-level BPE trained with HF `tokenizers`' own trainer: GPT-2 style (ByteLevel
  pre-tokenizer, processor and decoder) and RoBERTa/BART style (RobertaProcessing, <mask> with
  lstrip);
- SentencePiece Unigram models trained with the `sentencepiece` wheel and converted by
  Transformers' own slow-to-fast converters (XLM-R, T5, ALBERT, DeBERTa-v2: Precompiled
  charsmap, Metaspace, their templates).

    python tests/data/tokenizer_fixtures.py OUTDIR     writes OUTDIR/<style>.json for each style

Every vocabulary has at most VOCAB_SIZE entries, so the tiny family models (vocab 1000) take
any id. The text is the docstring corpus every test uses (tsrunner.sample_text).
"""

from __future__ import annotations

import functools
import importlib
import io
import sys
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
    "xlmr": ("XLMRobertaConverter", {"vocab_size": VOCAB_SIZE - 1}, {}),
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


@functools.cache
def tokenizer_json(style: str, workdir: Path) -> str:
    """The tokenizer.json text of `style` (one of STYLES); SentencePiece files go to workdir."""
    if style in ("gpt2", "roberta"):
        tokenizer = _byte_level_bpe(roberta=style == "roberta")
    elif style in _SPM:
        workdir.mkdir(parents=True, exist_ok=True)
        tokenizer = _sentencepiece_unigram(style, workdir)
    else:
        raise ValueError(f"unknown tokenizer style {style!r}; expected one of {STYLES}")
    return tokenizer.to_str()


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
        (out / f"{style}.json").write_text(tokenizer_json(style, out), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
