"""benchmarks/peers.py's plumbing on a tiny model: runners, tsrun bench JSON, the table.

Only runners with no extra dependencies (the `bench` extra holds ONNX Runtime and matplotlib),
tiny timings, and no assertion on speed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tsrunner.aoti import cpu_flags

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", PEERS)
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    return module


def test_peers_measures_and_writes_a_table(peers, tiny_bert_dir, tmp_path):
    parser_args = [
        "--model-dir", str(tiny_bert_dir), "--shapes", "1x8,2x4",
        "--runners", "eager,torchscript-python,tsrun-fp32", "--min-seconds", "0.01",
        "--work-dir", str(tmp_path / "work"), "--skip-cold-start", "--threads", "1",
    ]  # fmt: skip
    args = peers.parse_args(parser_args)
    threads = torch.get_num_threads()
    try:
        results = peers.measure(args)
    finally:
        torch.set_num_threads(threads)  # process-wide: leave it as the other tests expect
    assert results["failures"] == {}
    cells = {(r["runner"], r["batch"], r["sequence"]) for r in results["rows"]}
    assert cells == {
        (runner, batch, sequence)
        for runner in ["eager", "torchscript-python", "tsrun-fp32"]
        for batch, sequence in [(1, 8), (2, 4)]
    }
    for row in results["rows"]:
        assert row["latency_ms"] > 0
        assert row["sequences_per_s"] == pytest.approx(row["batch"] / row["latency_ms"] * 1e3)
    assert results["sgemm_gflop_per_s"] > 0
    table = peers.markdown(results, "plot.png")
    assert table.startswith(peers.MARK_BEGIN) and table.endswith(peers.MARK_END)
    assert "| 2x4 |" in table and "1.00x" in table  # eager against itself
    # The section replaces only what lies between the markers of an existing page.
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Mine\n\nkept\n\n{peers.MARK_BEGIN}\nold\n{peers.MARK_END}\n\ntail\n")
    peers.replace_section(page, table)
    text = page.read_text()
    assert "kept" in text and "tail" in text and "\nold\n" not in text and "| 1x8 |" in text


def test_bad_shapes_and_runners_are_usage_errors(peers):
    with pytest.raises(SystemExit) as error:
        peers.parse_args(["--shapes", "32by128"])
    assert error.value.code == 2
    with pytest.raises(SystemExit) as error:
        peers.parse_args(["--runners", "eager,tensorrt"])
    assert error.value.code == 2


# Whether this CPU runs the opt-in bf16 compute (text_throughput.py adds it as a contender).
BF16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
# ... and whether it runs on tsrunner's bf16 kernel (then oneDNN's bf16 is a contender too).
BF16_KERNEL = "avx512_bf16" in cpu_flags() and "amx_bf16" not in cpu_flags()


def test_text_throughput_runs_every_contender(tmp_path):
    """benchmarks/text_throughput.py end to end on a few sentences: every row, equal embeddings."""
    report = tmp_path / "report.md"
    script = PEERS.parent / "text_throughput.py"
    command = [sys.executable, script, "--sentences", "24", "--threads", "1", "--repeats", "1"]
    subprocess.run([*command, "--out", report], check=True, capture_output=True, timeout=600)
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "seconds" not in line]
    bf16_rows = [
        "| tsrun --input --batch-size 32 --threads 1 --compute bf16",
        "| tsrun ... --threads 1 --concurrent-batches 1 --compute bf16 (opt-in)",
    ]
    assert [row.split(" | ")[0] for row in rows] == [
        "| sentence-transformers encode(batch_size=32), fresh process",
        "| sentence-transformers encode(batch_size=32), model loaded in this process",
        "| tsrun --input --batch-size 32 --threads 1",
        "| tsrun --input --batch-size 32 --threads 1 --concurrent-batches 1",
        "| tsrun ... --threads 1 --concurrent-batches 1 --kernel-path default",
        "| padded to 128, batches of 32 (original docs)",
    ] + (bf16_rows * BF16) + (["| same, oneDNN's bf16 GEMM (TSR_BF16_KERNEL=0)"] * BF16_KERNEL)
    agreement = re.findall(r"^- (out-\S+): min cosine ([0-9.]+), max \|diff\| (\S+);", text, re.M)
    # every tsrun configuration, against sentence-transformers
    assert len(agreement) == 3 + 2 * BF16 + BF16_KERNEL, text
    # each precision's best against the fresh sentence-transformers process, bf16's target
    summary = re.findall(
        r"^- tsrun (\w+) / sentence-transformers: ([0-9.]+)x \((.*)\)$", text, re.M
    )
    assert [precision for precision, _, _ in summary] == ["fp32"] + ["bf16"] * BF16, text
    assert all(float(ratio) > 0 for _, ratio, _ in summary)
    assert all(("target >= 2.5x" in rest) == (p == "bf16") for p, _, rest in summary), text
    for name, cosine, difference in agreement:  # bf16 rounds: held to the cosine gate only
        assert float(cosine) >= 0.9999, text
        assert float(difference) < 1e-4 or name.endswith("-bf16.jsonl"), text


def test_compare_builds_measures_each_build_on_each_shape(tiny_bert_pt, tsrun):
    """The same tsrun twice (one with its engine pinned): every cell is a positive CPU time."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_builds.py"
    command = [sys.executable, str(script), str(tiny_bert_pt), f"a={tsrun}", f"b={tsrun}"]
    # 4,000 calls: the tiny model's call is ~0.06 ms of CPU, so fewer would leave the difference
    # of two processes' start-up costs (the script's method) to noise on a loaded machine.
    command += ["--args", "b=--kernel-path default", "--shapes", "1x8", "--rounds", "1"]
    command += ["--calls", "4000"]
    table = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if "|" in line}
    assert set(rows) == {"shape", "---", "1x8", "load + 1 call"}, table
    for name in ("1x8", "load + 1 call"):
        numbers = [float(n) for n in re.findall(r"\d+\.\d+", rows[name])]
        assert len(numbers) == 5 and all(n > 0 for n in numbers), rows[name]


def test_compare_builds_names_a_failing_build(tiny_bert_pt, tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_builds.py"
    missing = tmp_path / "no-model.pt"
    command = [sys.executable, str(script), str(missing), "a=/bin/false", "b=/bin/false"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and "/bin/false bench" in result.stderr


def test_interleave_alternates_runners_in_worker_processes(
    peers, tiny_bert_dir, tmp_path, monkeypatch
):
    """--interleave on the tiny model: each runner in its own process, every round counted,
    the per-round speedup computed against the reference, each worker's RSS, the section
    written; a peer whose package is missing is reported, not fatal."""

    def missing(model_dir, work):
        raise ImportError("No module named 'openvino'")

    monkeypatch.setitem(
        peers.peer_runners.RUNNERS, "openvino-fp32", peers.peer_runners.PeerRunner(missing, None)
    )
    out = tmp_path / "docs"
    argv = [
        "--model-dir", str(tiny_bert_dir), "--shapes", "1x8", "--threads", "1",
        "--runners", "tsrun-fp32,tsrun-fp32-default,tsrun-fp32-no-small-gemm,openvino-fp32",
        "--interleave", "3", "--block-seconds", "0.01", "--work-dir", str(tmp_path / "work"),
        "--out-dir", str(out),
    ]  # fmt: skip
    assert peers.main(argv) == 0
    results = json.loads((out / "benchmarks-interleaved.json").read_text())
    assert results["failures"] == {"openvino-fp32": "ImportError: No module named 'openvino'"}
    assert results["rounds"] == 3
    for memory in results["memory"].values():  # VmRSS / VmHWM of each worker
        assert 0 < memory["baseline_rss_mb"] < memory["rss_mb"] <= memory["peak_rss_mb"]
    assert results["kernel_paths"]["tsrun-fp32"].startswith("onednn")
    assert results["kernel_paths"]["tsrun-fp32-default"].startswith("default")
    # The A/B runner's environment reaches its worker: the small-row kernel is off there.
    paths = results["kernel_paths"]
    assert "small-row" not in paths["tsrun-fp32-no-small-gemm"]
    assert ("small-row" in paths["tsrun-fp32"]) == ("avx512f" in cpu_flags())
    (shape,) = results["shapes"]
    for row in shape["runners"].values():
        assert 0 < row["min_ms"] <= row["median_ms"] and row["cpu_ms_per_call"] > 0
        assert row["calls"] >= 3 * 2  # three blocks of at least two calls
    assert shape["speedup"] == {}  # no ONNX Runtime among the runners: nothing to divide by
    text = (out / "benchmarks.md").read_text()
    assert peers.INTERLEAVE_BEGIN in text and "| 1x8 | tsrun-fp32-default |" in text
    assert "- openvino-fp32: ImportError" in text and "Memory of each worker process" in text


def test_interleave_speedup_pairs_blocks_of_one_round(peers):
    blocks = {
        "onnxruntime": [{"ms": [4.0, 4.0], "cpu_ms": 4.0}, {"ms": [8.0, 8.0], "cpu_ms": 6.0}],
        "tsrun-fp32": [{"ms": [2.0, 2.0], "cpu_ms": 2.0}, {"ms": [8.0, 8.0], "cpu_ms": 3.0}],
    }
    shape = peers.summarize_shape(1, 16, blocks)
    wall = shape["speedup"]["tsrun-fp32"]["wall"]
    assert (wall["min"], wall["max"], wall["median"]) == (1.0, 2.0, 1.5)
    assert shape["speedup"]["tsrun-fp32"]["cpu"]["median"] == 2.0
    assert shape["runners"]["onnxruntime"]["min_ms"] == 4.0
    assert shape["runners"]["tsrun-fp32"]["median_ms"] == 5.0


def test_interleave_compares_tsrun_with_peers_at_its_precision(peers):
    """Per round, peer ms / tsrun ms for each pair of the same precision, with the target's
    verdict on the median; runners of other precisions are not paired."""
    block = lambda ms: {"ms": [ms, ms], "cpu_ms": ms}  # noqa: E731
    blocks = {
        "tsrun-bf16": [block(2.0), block(2.0), block(4.0)],
        "openvino-bf16": [block(3.0), block(2.0), block(6.0)],
        "tsrun-int8": [block(1.0), block(1.0), block(1.0)],
        "openvino-int8": [block(1.1), block(1.0), block(1.2)],
        "openvino-fp32": [block(5.0), block(5.0), block(5.0)],
    }
    shape = peers.summarize_shape(1, 128, blocks)
    pairs = {(row["runner"], row["peer"]): row for row in shape["versus"]}
    assert set(pairs) == {("tsrun-bf16", "openvino-bf16"), ("tsrun-int8", "openvino-int8")}
    bf16 = pairs[("tsrun-bf16", "openvino-bf16")]
    assert (bf16["wall"]["min"], bf16["wall"]["median"], bf16["wall"]["max"]) == (1.0, 1.5, 1.5)
    assert bf16["target"] == 1.2
    table = peers.versus_table({"shapes": [shape]})
    assert "| 1x128 | tsrun-bf16 | openvino-bf16 | 1.50x [1.00, 1.50] |" in table
    assert ">= 1.2x: met" in table and ">= 1.2x: missed" in table  # int8: 1.10x


def test_serve_bench_batch_mode_rate_and_table(tiny_bert_pt, tsrun, tmp_path):
    spec = importlib.util.spec_from_file_location("serve_bench", PEERS.parent / "serve_bench.py")
    serve_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_bench)
    sentences = ["a short sentence", "a somewhat longer sentence of several words"] * 4
    rate = serve_bench.batch_mode_rate(tsrun, str(tiny_bert_pt), sentences, 3, tmp_path)
    assert rate > 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3 * len(sentences)
    row = {"per_second": rate / 2, "p50_ms": 1.0, "p99_ms": 2.0}
    results = {
        "cpu": "a CPU", "tsrun_engine": "onednn", "loadavg_before": [0], "loadavg_after": [0],
        "batch_mode_runs": [rate], "batch_mode_per_second": rate,
        "rows": [{"clients": 1, "tsrun": row, "fastapi": {**row, "per_second": rate / 4}}],
    }  # fmt: skip
    args = serve_bench.build_parser().parse_args(["model_dir", "--pt", "m.pt"])
    table = serve_bench.markdown(results, args)
    assert "| 1 | " in table and "| 50% | " in table and "| 2.00x |" in table, table
    results["rows"][0]["tsrun"].update(lone_batches=90, batches=100)
    assert "batches run alone on every core: 1 client(s): 90 of 100." in serve_bench.markdown(
        results, args
    )


def test_serve_bench_load_generator_reads_real_answers(tiny_bert_pt, tsrun):
    # The load generator speaks HTTP over plain sockets and checks each answer's shape without
    # parsing it: against the real server, every request answered and counted, none an error.
    spec = importlib.util.spec_from_file_location("serve_bench", PEERS.parent / "serve_bench.py")
    serve_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_bench)
    from serve_process import Server, environment_without_api_key

    sentences = ["a short sentence", "a somewhat longer sentence of several words"]
    with Server(tsrun, [tiny_bert_pt], env=environment_without_api_key()) as server:
        before = serve_bench.batch_counts(server)
        result = serve_bench.closed_loop(server.host, server.port, sentences, 3, 1.0)
        after = serve_bench.batch_counts(server)
        status, body = server.post("/embed", {"inputs": sentences[0]})
    assert result["errors"] == 0 and result["requests"] >= 3, result
    assert 1 <= after[1] - before[1] <= result["requests"] and after[0] <= after[1]
    assert status == 200 and serve_bench._one_embedding(json.dumps(body).encode())
    assert not serve_bench._one_embedding(json.dumps(body * 2).encode())  # two vectors
    assert not serve_bench._one_embedding(b'{"error": "x"}')


def test_pt2_matrix_rows_read_back_so_a_stopped_sweep_resumes(tmp_path, monkeypatch):
    # --keep reuses the rows the file has: what _write renders, _measured_rows must read back,
    # a row that did not export (its one-line reason in place of the contract) included.
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    spec = importlib.util.spec_from_file_location("pt2_matrix", scripts / "support_matrix_pt2.py")
    matrix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(matrix)
    monkeypatch.setattr(matrix, "MATRIX", tmp_path / "matrix.md")
    rows = [
        ("BERT", "feature-extraction", "dynamic 1..16", "yes (4.8e-07)", "69 (load 7.5)"),
        ("GPT-2", "causal-lm", "no", "torch.export failed: data-dependent branch", ""),
    ]
    matrix._write(rows, [], done=False)
    assert "Incomplete" in matrix.MATRIX.read_text()
    assert list(matrix._measured_rows().values()) == rows


def test_bf16_accuracy_and_weight_traffic_scripts_run(tiny_bert_pt):
    """benchmarks/bf16_accuracy.py (where the CPU has bf16 instructions: elsewhere the Runner
    refuses compute="bf16", tests/python/test_bf16_compute.py) and weight_traffic.py end to
    end on the tiny export."""
    flags = cpu_flags()
    has_bf16 = BF16
    scripts = PEERS.parent
    accuracy = [sys.executable, scripts / "bf16_accuracy.py", "--model", tiny_bert_pt]
    traffic = [sys.executable, scripts / "weight_traffic.py", "--model", tiny_bert_pt]
    commands = [[*traffic, "--seconds", "0.05", "--threads", "1"]]
    if has_bf16:
        commands.append([*accuracy, "--sentences", "8", "--threads", "1"])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        if "bf16_accuracy.py" in str(command[1]):
            assert "bf16 compute" in result.stdout and "cosine(bf16, fp32): min" in result.stdout
        else:
            assert re.search(r"fp32: 9 GEMMs at M=16, [\d.]+ MB of weights", result.stdout)
            assert "bf16: 9 GEMMs" in result.stdout
            small_row = re.search(r"fp32 small-row kernel at M=16: [\d.]+ ms", result.stdout)
            assert bool(small_row) == ("avx512f" in flags), result.stdout


def test_fusion_ab_script_compares_the_kernel_switches(tiny_bert_pt):
    """benchmarks/fusion_ab.py on the tiny export: four Runners, each with its switches (the
    engine reasons show them), outputs within rounding of each other, a line per Runner."""
    script = PEERS.parent / "fusion_ab.py"
    command = [sys.executable, script, tiny_bert_pt, "--shape", "1x8", "--rounds", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reasons = dict(re.findall(r"^(base|attn|attn\+ln|all): (oneDNN.*)$", result.stdout, re.M))
    assert "attentions" not in reasons["base"] and "layer norms" not in reasons["base"]
    assert "2 attentions" in reasons["attn"] and "layer norms" not in reasons["attn"]
    assert "2 attentions" in reasons["attn+ln"] and "5 layer norms" in reasons["attn+ln"]
    assert "in place" not in reasons["attn+ln"] and "2 reading" in reasons["all"]
    for diff in re.findall(r"max \|diff\| to base ([\d.e+-]+)", result.stdout):
        assert float(diff) < 1e-5
    assert len(re.findall(r"per call; base/this per round", result.stdout)) == 4


def test_bf16_gemm_benchmark_prints_its_table():
    script = PEERS.parent / "bf16_gemm.py"
    command = [sys.executable, str(script), "--rows", "3", "--rounds", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if "avx512_bf16" not in cpu_flags():
        assert result.returncode != 0 and "no AVX512_BF16" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 4  # MiniLM's four GEMM shapes
    assert all(re.search(r"\d+\.\d+x \|$", row) for row in rows), rows


def test_int8_neighbours_finds_the_flips_at_near_ties():
    # benchmarks/int8_neighbours.py's margin analysis on four vectors: sentence 0's first and
    # second neighbours (1, 2) are 3.5e-5 apart, and so are sentence 3's (2, 1). Moving vector 2
    # a little towards 0 swaps both; sentences 1 and 2 keep theirs.
    spec = importlib.util.spec_from_file_location(
        "int8_neighbours", PEERS.with_name("int8_neighbours.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    e1, e2, e3 = torch.eye(3, dtype=torch.float64)
    reference = torch.stack([e1, e1 + 0.5 * e2, e1 + 0.5001 * e3, -e1])
    got = reference.clone()
    got[2] = e1 + 0.4999 * e3
    report = module.neighbour_report(reference, got)
    assert report["result"].nearest_neighbour == 0.5
    assert report["changed"] == 2 and report["to_second"] == 2
    assert 3e-5 < report["flipped_margin_max"] < 4e-5
    assert report["shift_p50"] > 3e-5  # the shift exceeds the margins it flipped


def test_int8_gemm_benchmark_times_every_body_and_checks_their_bits():
    # The script asserts that every body it times gives the same bits before it times them.
    script = PEERS.parent / "int8_gemm.py"
    command = [sys.executable, str(script), "--rows", "3", "--rounds", "1", "--generic"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("| M |"))
    assert header.endswith("| generic |"), header
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 4  # MiniLM's four GEMM shapes
    assert all(row.count("GMAC/s") == header.count("|") - 3 for row in rows), rows


def test_int8_bodies_benchmark_runs_the_archive_on_each_body(tiny_int8_export, tsrun):
    path, _ = tiny_int8_export
    script = PEERS.parent / "int8_bodies.py"
    command = [sys.executable, str(script), str(path), "--shapes", "1x8", "--rounds", "1"]
    command += ["--tsrun", tsrun]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    flags = cpu_flags()
    if "avx512_vnni" not in flags:  # the 512-bit body is refused at load, in one line
        assert result.returncode != 0 and "cannot run the AVX512-VNNI int8 kernel" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "(AVX512-VNNI)" in result.stdout and "(AVX-VNNI" in result.stdout, result.stdout
    assert re.search(r"^\| 1x8 \| [\d.]+ \([\d.]+\) \| [\d.]+ \([\d.]+\) \|$", result.stdout, re.M)
