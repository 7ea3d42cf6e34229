"""A short run of benchmarks/serve_load.py inside `make test`: 8 clients for 3 s, misbehaving
clients mixed in, every answer checked (`make load-test` is the 64-client, 60 s run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


def _serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_load_with_misbehaving_clients(tsrun, tiny_bert_pt):
    serve_load = _serve_load()
    args = [str(tiny_bert_pt), "--tsrun", tsrun, "--clients", "8", "--seconds", "3"]
    args += ["--warmup", "1", "--chaos", "--chaos-share", "0.2", "--sentences", "64"]
    args += ["--max-concurrent-requests", "4"]  # 8 clients: some deliberate 429s
    parsed = serve_load.build_parser().parse_args(args)
    result = serve_load.run(parsed)
    assert serve_load.check(result, parsed.max_rss_growth_mb) == [], result
    counts = result["counts"]
    assert counts["good_ok"] > 10, counts
    # The misbehaving kinds really ran and each got its documented answer.
    assert sum(counts.get(kind, 0) for kind in serve_load.CHAOS_KINDS) > 3, counts
