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


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_new_batch_shapes_do_not_grow_memory(tsrun, minilm_pt):
    # Every (rows, length) a server meets is a new shape. oneDNN's primitive caches kept about
    # 1.8 MB per shape of MiniLM here (+101 MB over these 56 shapes when set back to their 1024
    # entries); tsrun serve caps them and mmaps large blocks (+12 MB measured).
    from serve_process import Server, environment_without_api_key

    env = environment_without_api_key()
    env.pop("LRU_CACHE_CAPACITY", None)
    env.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)
    with Server(tsrun, [minilm_pt], "--workers", "1", env=env) as server:

        def embed(rows: int, words: int) -> None:
            texts = [" ".join(["word"] * words) + f" {row}" for row in range(rows)]
            status, body = server.post("/embed", {"inputs": texts})
            assert status == 200 and len(body) == rows, (status, body)

        embed(4, 8)
        start = _rss_mb(server.process.pid)
        for words in range(4, 32, 4):
            for rows in range(1, 9):
                embed(rows, words)
        growth = _rss_mb(server.process.pid) - start
    assert growth < 40, f"resident memory grew {growth:.0f} MB over 56 new batch shapes"
