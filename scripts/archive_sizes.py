"""Measures what tied weights and buckets cost in archive bytes (docs/format.md quotes this).

    python scripts/archive_sizes.py

Tiny random models from tests/data (sizes depend only on the model, not on the machine).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import transformers

import tsrunner

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    tiny_models, fixtures = _load("tiny_models"), _load("make_fixtures")
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        mlm = tiny_models.make_model("BERT", "fill-mask", work / "mlm", tokenizer_source=None)
        model = transformers.BertForMaskedLM.from_pretrained(mlm)
        unique = sum(p.numel() * p.element_size() for p in model.parameters())
        unique += sum(b.numel() * b.element_size() for b in model.buffers())
        tied = tsrunner.export(mlm, work / "tied.pt", max_length=8)
        untied = tsrunner.export(mlm, work / "untied.pt", max_length=8, untie_weights=True)
        print(f"BertForMaskedLM: unique parameter+buffer bytes {unique}")
        print(f"  tied (default) archive {tied.size_bytes} ({tied.size_bytes / unique:.3f}x)")
        print(f"  --untie-weights archive {untied.size_bytes} ({untied.size_bytes / unique:.3f}x)")
        bert = fixtures.make_tiny_bert(work / "bert")
        fixed = tsrunner.export(bert, work / "fixed.pt", max_length=16, shapes="fixed")
        buckets = tsrunner.export(bert, work / "buckets.pt", buckets=[4, 8, 16])
        print(f"BertModel: --shapes fixed --max-length 16 archive {fixed.size_bytes}")
        ratio = buckets.size_bytes / fixed.size_bytes
        print(f"  --buckets 4,8,16 archive {buckets.size_bytes} ({ratio:.3f}x)")


if __name__ == "__main__":
    main()
