"""Python and C++ give identical outputs for the real model (all-MiniLM-L6-v2).

For the same token ids (several texts, a padded batch): torch.jit.load in Python, the C++
runner through pybind11 and the native tsrun binary agree bit for bit, and the eager
Transformers model agrees within 1e-5. Bit-for-bit holds at equal intra-op thread counts (a
different count splits the matrix products differently), so every path here uses THREADS.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import tokenizers
import torch
import transformers

import tsrunner

THREADS = 2
TEXTS = [
    "Who was Jim Henson?",
    "Jim Henson was a puppeteer",
    "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest.",
    "Unrelated: the stock market fell three percent on Tuesday.",
]


@pytest.fixture(scope="module")
def batch(minilm_pt):
    """Token ids from the tokenizer embedded in the export, padded the way tsrun pads."""
    manifest = tsrunner.read_manifest(minilm_pt)
    tokenizer = tokenizers.Tokenizer.from_str(
        tsrunner.read_archive_file(minilm_pt, "tsrunner/tokenizer.json")
    )
    tokenizer.no_padding()
    rows = [tokenizer.encode(text).ids for text in TEXTS]
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), manifest["pad_token_id"], dtype=torch.long)
    mask = torch.zeros_like(ids)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
        mask[index, : len(row)] = 1
    assert mask.sum(1).min() < length, "the batch must contain padding"
    return {"rows": rows, "input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def reference(minilm_pt, batch):
    torch.set_num_threads(THREADS)
    module = torch.jit.load(str(minilm_pt))
    types = torch.zeros_like(batch["input_ids"])
    with torch.inference_mode():
        outputs = module(batch["input_ids"], batch["attention_mask"], types)
    names = [output["name"] for output in tsrunner.read_manifest(minilm_pt)["outputs"]]
    assert names == ["last_hidden_state", "pooler_output", "sentence_embedding"]
    return dict(zip(names, outputs, strict=True))


def test_cpp_runner_matches_torch_jit_load_bit_for_bit(minilm_pt, batch, reference):
    # Like with like: the plain graph on both sides (the oneDNN path: test_cpu_fast_path.py).
    runner = tsrunner.Runner(minilm_pt, threads=THREADS, kernel_path="default")
    outputs = runner.run(
        {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    )
    assert list(outputs) == list(reference)
    for name, expected in reference.items():
        assert torch.equal(outputs[name], expected), name


def test_tsrun_raw_matches_torch_jit_load_bit_for_bit(
    minilm_pt, batch, reference, tsrun, clean_env
):
    command = [tsrun, str(minilm_pt), "--raw", "--threads", str(THREADS)]
    for row in batch["rows"]:
        command += ["--ids", ",".join(map(str, row))]
    result = subprocess.run(command, capture_output=True, text=True, env=clean_env)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed) == list(reference)
    for name, expected in reference.items():
        assert printed[name]["shape"] == list(expected.shape)
        assert printed[name]["dtype"] == "float32"
        values = torch.tensor(printed[name]["data"], dtype=torch.float64)
        # float32 -> shortest text -> float64 -> float32 must be the identity.
        assert torch.equal(values.to(torch.float32).reshape(expected.shape), expected), name


def test_eager_transformers_agrees_within_1e_5(minilm_dir, batch, reference):
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        eager = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    mask = batch["attention_mask"].bool()
    # Positions under padding are not defined by the model; compare every real token.
    torch.testing.assert_close(
        reference["last_hidden_state"][mask], eager.last_hidden_state[mask], rtol=0, atol=1e-5
    )
    torch.testing.assert_close(reference["pooler_output"], eager.pooler_output, rtol=0, atol=1e-5)


def test_embeddings_rank_related_text_first(minilm_pt, batch):
    """A sanity check a person understands: mean-pooled, normalised MiniLM embeddings."""
    runner = tsrunner.Runner(minilm_pt)
    hidden = runner.run(
        {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    )["last_hidden_state"]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > 0.5 > similarity[0, 3]
