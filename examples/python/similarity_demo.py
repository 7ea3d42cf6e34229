"""`make demo`: sentence similarity with all-MiniLM-L6-v2, answered by the native tsrun binary.

tsrun does everything: reads the export, tokenizes with the embedded tokenizer, runs the model
with LibTorch and pools the embeddings as sentence-transformers does. This script only starts it
and prints cosine similarities. Usage: python examples/python/similarity_demo.py traced_bert.pt
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

QUERY = "Who was Jim Henson?"
CANDIDATES = [
    "Jim Henson was a puppeteer",
    "Jim Henson created the Muppets",
    "The stock market fell three percent on Tuesday",
]


def tsrun_path() -> str:
    beside = Path(sys.executable).parent / "tsrun"
    return str(beside) if beside.is_file() else (shutil.which("tsrun") or "tsrun")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main(model: Path) -> None:
    command = [tsrun_path(), str(model)]
    for text in [QUERY, *CANDIDATES]:
        command += ["--text", text]
    shown = " ".join(f'"{part}"' if " " in part else part for part in command)
    print(f"$ {shown.replace(tsrun_path(), 'tsrun')}")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stderr.strip())
    embeddings = [json.loads(line)["embedding"] for line in result.stdout.splitlines()]
    print(f"{len(embeddings)} embeddings of {len(embeddings[0])} floats in {seconds:.2f} s")
    print(f'Similarity to "{QUERY}":')
    scores = [cosine(embeddings[0], other) for other in embeddings[1:]]
    for text, score in sorted(zip(CANDIDATES, scores, strict=True), key=lambda item: -item[1]):
        bar = "#" * max(0, round(score * 30))
        print(f"  {score:6.3f}  {bar:<30}  {text}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: similarity_demo.py MODEL.pt")
    main(Path(sys.argv[1]))
