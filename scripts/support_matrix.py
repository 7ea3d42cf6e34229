"""Regenerates docs/support-matrix.md from actual exports of every tiny family model.

    python scripts/support_matrix.py [--check]

Each (family, task) of tests/data/tiny_models.py is built with its family's tokenizer, exported
with `--task auto`, and run through the C++ runner against the eager model, from token ids and
from text (tests/data/from_text.py); the table records what happened. With --check
it exits 1 when the committed file differs (tests/python/test_families.py checks the same).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "docs" / "support-matrix.md"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    _load("tokenizer_fixtures")  # tiny_models and from_text import it
    _load("from_text")
    tiny_models = _load("tiny_models")
    fixtures = _load("make_fixtures")
    with tempfile.TemporaryDirectory() as workdir:
        results = []
        for family, task in tiny_models.cases():
            result = tiny_models.run_case(
                family,
                task,
                Path(workdir),
                tokenizer_source=fixtures.minilm_directory(),
                family_tokenizers=True,
            )
            print(
                f"{family:12} {task:22} {result.contract or result.error} {result.from_text}",
                file=sys.stderr,
            )
            results.append(result)
        text = tiny_models.render_matrix(results)
    if "--check" in argv:
        if MATRIX.read_text() != text:
            print(f"{MATRIX} is stale: run python scripts/support_matrix.py", file=sys.stderr)
            return 1
        return 0
    MATRIX.write_text(text)
    print(f"wrote {MATRIX}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
