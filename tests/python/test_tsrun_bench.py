"""`tsrun bench`: the report's structure and consistency, and one-line errors for bad arguments.

No timing assertions: speed is measured in benchmarks/, not asserted in tests.
"""

from __future__ import annotations

import json
import subprocess

import pytest

LATENCY_KEYS = ["min", "mean", "p50", "p90", "p99", "max"]


def _bench(tsrun, *args):
    return subprocess.run(
        [tsrun, "bench", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_json_report_is_one_consistent_object(tsrun, tiny_bert_pt):
    result = _bench(
        tsrun, tiny_bert_pt, "--batch", 3, "--seq", 8, "--warmup", 1, "--iterations", 7,
        "--threads", 1, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert (report["batch"], report["sequence"], report["iterations"]) == (3, 8, 7)
    assert report["threads"] == 1
    latency = report["latency_ms"]
    assert list(latency) == LATENCY_KEYS
    ordered = [latency[key] for key in ["min", "p50", "p90", "p99", "max"]]
    assert ordered == sorted(ordered) and ordered[0] > 0
    assert latency["min"] <= latency["mean"] <= latency["max"]
    throughput = report["throughput"]
    assert throughput["sequences_per_s"] > 0
    assert throughput["tokens_per_s"] == pytest.approx(throughput["sequences_per_s"] * 8)
    # Throughput counts whole timed calls: it cannot beat the fastest call.
    assert throughput["sequences_per_s"] <= 3 / (latency["min"] / 1e3) * 1.001
    assert report["first_call_ms"] > 0
    assert report["peak_rss_mb"] > 10  # LibTorch alone is larger than that


def test_duration_mode_and_text_report(tsrun, tiny_bert_pt):
    result = _bench(tsrun, tiny_bert_pt, "--batch", 1, "--seq", 4, "--duration", 0.3)
    assert result.returncode == 0, result.stderr
    for label in ["first call", "latency ms", "p99", "sequences/s", "tokens/s", "peak RSS"]:
        assert label in result.stdout
    iterations = int(result.stdout.split("iterations")[1].split()[0])
    assert iterations >= 1


def test_tuning_flags_are_accepted(tsrun, tiny_bert_pt):
    result = _bench(
        tsrun, tiny_bert_pt, "--batch", 2, "--seq", 5, "--iterations", 2, "--interop-threads", 1,
        "--no-optimize-graph", "--freeze", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["interop_threads"] == 1
    assert report["optimize_graph"] is False and report["freeze"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seq", "8"], "--batch is required"),
        (["--batch", "0", "--seq", "8"], "--batch"),
        (["--batch", "1", "--seq", "-3"], "--seq"),
        (["--batch", "1", "--seq", "65"], "sequence 65 is above the export's maximum 64"),
        (["--batch", "1", "--seq", "8", "--iterations", "3", "--duration", "1"], "excludes"),
        (["--batch", "1", "--seq", "8", "--threads", "x"], "--threads"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tsrun, tiny_bert_pt, args, message):
    result = _bench(tsrun, tiny_bert_pt, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "terminate" not in result.stderr


def test_missing_model_exits_2(tsrun, tmp_path):
    result = _bench(tsrun, tmp_path / "absent.pt", "--batch", 1, "--seq", 4)
    assert result.returncode == 2
    assert "absent.pt" in result.stderr and len(result.stderr.strip().splitlines()) == 1
