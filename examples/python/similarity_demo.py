"""`make demo`: sentence similarity with all-MiniLM-L6-v2 run by the native tsrun binary.

The model runs in tsrun (LibTorch, no Python in that process). This script does the two steps
tsrun does not do natively yet: tokenizing with the tokenizer embedded in the export, and
sentence-transformers' pooling (mean over real tokens, then normalisation, as the manifest
records). Usage: python examples/python/similarity_demo.py traced_bert.pt
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tokenizers
import torch

import tsrunner

QUERY = "Who was Jim Henson?"
CANDIDATES = [
    "Jim Henson was a puppeteer",
    "Jim Henson created the Muppets",
    "The stock market fell three percent on Tuesday",
]


def tsrun_path() -> str:
    beside = Path(sys.executable).parent / "tsrun"
    return str(beside) if beside.is_file() else (shutil.which("tsrun") or "tsrun")


def embed(model: Path, texts: list[str]) -> torch.Tensor:
    manifest = tsrunner.read_manifest(model)
    tokenizer = tokenizers.Tokenizer.from_str(
        tsrunner.read_archive_file(model, "tsrunner/tokenizer.json")
    )
    tokenizer.no_padding()
    tokenizer.enable_truncation(manifest["max_length"])
    rows = [tokenizer.encode(text).ids for text in texts]
    command = [tsrun_path(), str(model), "--raw"]
    for row in rows:
        command += ["--ids", ",".join(map(str, row))]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stderr.strip())
    hidden = json.loads(result.stdout)["last_hidden_state"]
    states = torch.tensor(hidden["data"]).reshape(hidden["shape"])
    lengths = torch.tensor([len(row) for row in rows])
    mask = (torch.arange(states.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).float()
    pooling = manifest.get("pooling") or {"mode": "mean", "normalize": True}
    mean = (states * mask).sum(1) / mask.sum(1)
    embeddings = states[:, 0] if pooling["mode"] == "cls" else mean
    if pooling.get("normalize"):
        embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    return embeddings


def main(model: Path) -> None:
    manifest = tsrunner.read_manifest(model)
    started = time.perf_counter()
    embeddings = embed(model, [QUERY, *CANDIDATES])
    seconds = time.perf_counter() - started
    print(
        f"{model}: {manifest['model']['class']} ({manifest['task']}), "
        f"run natively by {tsrun_path()}"
    )
    print(f'Similarity to "{QUERY}":')
    scores = (embeddings[1:] @ embeddings[0]).tolist()
    for text, score in sorted(zip(CANDIDATES, scores, strict=True), key=lambda item: -item[1]):
        bar = "#" * max(0, round(score * 30))
        print(f"  {score:6.3f}  {bar:<30}  {text}")
    print(
        f"({len(CANDIDATES) + 1} sentences, one padded batch, {seconds * 1000:.0f} ms end to end)"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: similarity_demo.py MODEL.pt")
    main(Path(sys.argv[1]))
