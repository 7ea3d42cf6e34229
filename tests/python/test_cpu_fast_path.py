"""The oneDNN kernel path (RunnerOptions.kernel_path): chosen at load, correct, and never fatal.

engine "onednn" freezes the module and runs float32 Linear layers on oneDNN's GEMM with weights
packed at load; "default" runs the graph as exported. Outputs must stay within 1e-5 of eager
Transformers on real text, Python and C++ must agree bit for bit on the same path, and a
rewrite that fails falls back to the plain graph with one stderr line.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizers
import torch
import transformers

import tsrunner
from tsrunner import sample_text
from tsrunner.aoti import cpu_flags

THREADS = 2


def _fast_path_expected() -> bool:
    """What auto should pick here: oneDNN on x86-64 CPUs with AVX2."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        return any(line.startswith("flags") and " avx2" in line for line in cpuinfo)


def _encode(minilm_pt, texts):
    tokenizer = tokenizers.Tokenizer.from_str(
        tsrunner.read_archive_file(minilm_pt, "tsrunner/tokenizer.json")
    )
    tokenizer.no_padding()
    tokenizer.enable_truncation(128)
    rows = [tokenizer.encode(text).ids for text in texts]
    length = max(map(len, rows))
    ids = torch.zeros((len(rows), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
        mask[index, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def fast_runner(minilm_pt):
    return tsrunner.Runner(minilm_pt, threads=THREADS, kernel_path="onednn")


def test_auto_takes_onednn_on_x86_with_avx2(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=THREADS)
    assert runner.kernel_path == ("onednn" if _fast_path_expected() else "default")
    assert tsrunner.Runner(minilm_pt, kernel_path="default").kernel_path == "default"


def test_onednn_within_1e_5_of_eager_on_real_text_and_validation_shapes(
    minilm_dir, minilm_pt, fast_runner
):
    assert fast_runner.kernel_path == "onednn", fast_runner.kernel_path_reason
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    generator = torch.Generator().manual_seed(0)
    batches = [_encode(minilm_pt, sample_text.sample(24))]
    for batch, sequence in [(1, 16), (2, 128)]:  # validation shapes of the export
        ids = torch.randint(1000, 20000, (batch, sequence), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    for inputs in batches:
        got = fast_runner.run(inputs)
        with torch.no_grad():
            want = model(**inputs)
        mask = inputs["attention_mask"].bool()
        torch.testing.assert_close(
            got["last_hidden_state"][mask], want.last_hidden_state[mask], rtol=0, atol=1e-5
        )
        torch.testing.assert_close(got["pooler_output"], want.pooler_output, rtol=0, atol=1e-5)


def test_onednn_merges_qkv_and_folds_gelu_and_residual_adds_into_the_gemms(fast_runner):
    # MiniLM: 6 layers, each Q/K/V merged into one GEMM, one GELU and two residual adds folded;
    # 6 x (1 QKV + output + intermediate + FFN output) + the pooler = 25 GEMMs instead of 37.
    assert (
        "25 GEMMs, 6 Q/K/V groups merged, 6 GELUs and 12 residual adds folded"
        in fast_runner.kernel_path_reason
    ), fast_runner.kernel_path_reason
    # ... and each layer's attention on the short-sequence kernel (test_fused_attention.py).
    assert "6 attentions on the short-sequence kernel" in fast_runner.kernel_path_reason
    # ... and its 13 layer norms on the few-row kernel (test_fused_layer_norm.py).
    assert "13 layer norms on the few-row kernel" in fast_runner.kernel_path_reason


def _avx512() -> bool:
    return "avx512f" in cpu_flags()


@pytest.mark.parametrize("with_panels", [False, True])
@pytest.mark.parametrize(
    "other_shape, other_dtype",
    [((2, 5, 6), torch.float32), ((6,), torch.float32), ((1, 5, 6), torch.float32),
     ((2, 5, 6), torch.float64)],
)  # fmt: skip
def test_folded_residual_add_equals_linear_plus_add_even_when_it_broadcasts(
    other_shape, other_dtype, with_panels
):
    # The graph does not say whether a residual broadcasts at every shape; the fused op checks
    # per call and otherwise runs the GEMM and aten::add, so the result is always linear + add,
    # on oneDNN (no panels) and on the small-row kernel alike.
    if with_panels and not _avx512():
        pytest.skip("the small-row kernel needs AVX-512; oneDNN's path is the other case")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=generator)
    weight = torch.randn(6, 8, generator=generator)
    bias = torch.randn(6, generator=generator)
    other = torch.randn(other_shape, generator=generator, dtype=other_dtype)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    panels = torch.ops.tsrunner.pack_panels(weight) if with_panels else None
    got = torch.ops.tsrunner.linear(x, packed, panels, bias, "none", None, other)
    want = torch.nn.functional.linear(x, weight, bias) + other
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.skipif(not _avx512(), reason="the small-row kernel needs AVX-512")
@pytest.mark.parametrize(
    "rows, n, k", [(1, 1, 1), (3, 40, 7), (16, 384, 384), (17, 33, 96), (26, 1152, 384),
                   (48, 16, 1536), (16, 100, 64), (5, 1000, 32)],
)  # fmt: skip
@pytest.mark.parametrize("epilogue", ["bias", "none", "gelu", "gelu-tanh", "residual"])
def test_small_row_kernel_is_the_linear_on_ragged_shapes(rows, n, k, epilogue):
    # Every tile height (1..16 rows and the chunks above), widths that are not a multiple of
    # the 16-column panel (also split between two threads: 100 and 1000 columns), and each
    # epilogue the graph folds in; against float64.
    generator = torch.Generator().manual_seed(rows * 1000 + n)
    x = torch.randn(1, rows, k, generator=generator)
    weight = torch.randn(n, k, generator=generator) / k**0.5
    bias = None if epilogue == "none" else torch.randn(n, generator=generator)
    other = torch.randn(1, rows, n, generator=generator) if epilogue == "residual" else None
    attr = "gelu" if epilogue.startswith("gelu") else "none"
    algorithm = {"gelu": "none", "gelu-tanh": "tanh"}.get(epilogue)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    panels = torch.ops.tsrunner.pack_panels(weight)
    # Under inference mode, as the Runner calls it, on two threads: the GELU runs on LibTorch's
    # worker threads, which must take over the caller's mode.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            got = torch.ops.tsrunner.linear(x, packed, panels, bias, attr, algorithm, other)
    finally:
        torch.set_num_threads(threads)
    want = torch.nn.functional.linear(
        x.double(), weight.double(), None if bias is None else bias.double()
    )
    if attr == "gelu":
        want = torch.nn.functional.gelu(want, approximate=algorithm)
    if other is not None:
        want = want + other.double()
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


@pytest.mark.skipif(not _avx512(), reason="the small-row kernel needs AVX-512")
def test_few_rows_take_the_small_row_kernel_and_more_rows_take_onednn():
    # Panels of a different weight make the route visible: up to 48 rows (the default limit,
    # or the developer's TSR_SMALL_GEMM_ROWS) the result is the panels' linear, above it
    # oneDNN's packed weight's.
    limit = int(os.environ.get("TSR_SMALL_GEMM_ROWS", "48"))
    generator = torch.Generator().manual_seed(0)
    weight, other_weight = torch.randn(2, 24, 32, generator=generator)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    panels = torch.ops.tsrunner.pack_panels(other_weight)
    for rows in sorted({1, limit, limit + 1, 200} - {0}):
        expected = other_weight if rows <= limit else weight
        x = torch.randn(rows, 32, generator=generator)
        got = torch.ops.tsrunner.linear(x, packed, panels, None, "none", None, None)
        torch.testing.assert_close(got, x @ expected.T, rtol=0, atol=1e-5)


@pytest.mark.skipif(not _avx512(), reason="the small-row kernel needs AVX-512")
def test_small_row_kernel_refuses_panels_and_bias_that_do_not_fit():
    # The op is public: panels of another shape or a short bias are named, never read past.
    weight = torch.randn(40, 24)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    panels = torch.ops.tsrunner.pack_panels(weight)
    x = torch.randn(4, 24)
    cases = [
        (panels[:2], torch.zeros(40), "panels must be pack_panels(weight)"),
        (panels[:, :12], torch.zeros(40), "panels must be pack_panels(weight)"),
        (panels.transpose(1, 2).contiguous().transpose(1, 2), None, "panels must be"),
        (panels, torch.zeros(39), "bias must hold 40 float32 values"),
    ]
    for bad_panels, bias, message in cases:
        with pytest.raises(RuntimeError, match=re.escape(message)):
            torch.ops.tsrunner.linear(x, packed, bad_panels, bias, "none", None, None)


def test_small_row_kernel_is_built_with_openmp():
    # Without -fopenmp, at::parallel_for in kernels/small_gemm.cc silently runs on one thread: every
    # result stays right, only slower. The built library must call LibTorch's OpenMP runtime.
    library = next(Path(tsrunner.__file__).parent.glob("lib/libtsrunner.so*"))
    symbols = subprocess.run(["nm", "-D", str(library)], capture_output=True, text=True, check=True)
    assert re.search(r"\bU GOMP_parallel\b", symbols.stdout), "libtsrunner.so lacks OpenMP"


def test_small_row_kernel_limit_is_read_from_the_environment(minilm_pt, clean_env):
    # TSR_SMALL_GEMM_ROWS=0 turns the kernel off; the engine's reason says which is in use.
    # The limit is read once per process, hence a child process per value.
    script = "import sys, tsrunner; print(tsrunner.Runner(sys.argv[1]).kernel_path_reason)"
    reasons = {}
    for rows in ("0", "48", "many"):
        result = subprocess.run(
            [sys.executable, "-c", script, str(minilm_pt)],
            capture_output=True, text=True, env={**clean_env, "TSR_SMALL_GEMM_ROWS": rows},
        )  # fmt: skip
        reasons[rows] = (result.returncode, result.stdout.strip(), result.stderr)
    assert reasons["0"][0] == 0 and "small-row" not in reasons["0"][1] and reasons["0"][2] == ""
    assert reasons["48"][0] == 0
    assert ("up to 48 rows on the small-row AVX-512 kernel" in reasons["48"][1]) == _avx512()
    # A bad value is refused at load wherever the oneDNN kernel path runs, AVX-512 or not.
    returncode, _, stderr = reasons["many"]
    if _fast_path_expected():
        assert returncode != 0
        assert 'TSR_SMALL_GEMM_ROWS must be a row count >= 0, not "many"' in stderr, stderr


def test_python_and_tsrun_agree_bit_for_bit_on_the_onednn_path(
    minilm_pt, fast_runner, tsrun, clean_env
):
    inputs = _encode(minilm_pt, sample_text.sample(3))
    expected = fast_runner.run(inputs)
    command = [tsrun, str(minilm_pt), "--raw", "--threads", str(THREADS), "--kernel-path", "onednn"]
    for row, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
        command += ["--ids", ",".join(map(str, row[mask.bool()].tolist()))]
    result = subprocess.run(command, capture_output=True, text=True, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = json.loads(result.stdout)
    for name, tensor in expected.items():
        got = torch.tensor(printed[name]["data"], dtype=torch.float64).to(torch.float32)
        assert torch.equal(got.reshape(tensor.shape), tensor), name


def test_a_failing_rewrite_falls_back_with_one_stderr_line(tiny_bert_pt, tsrun, clean_env):
    args = [tsrun, str(tiny_bert_pt), "--ids", "101,7592,102", "--raw", "--kernel-path", "onednn"]
    plain = subprocess.run([*args[:-1], "default"], capture_output=True, text=True, env=clean_env)
    failing = subprocess.run(
        args, capture_output=True, text=True, env={**clean_env, "TSR_TEST_FAIL_FAST_PATH": "1"}
    )
    assert failing.returncode == 0, failing.stderr
    lines = failing.stderr.splitlines()
    assert len(lines) == 1 and "oneDNN fast path failed" in lines[0], failing.stderr
    assert failing.stdout == plain.stdout  # the plain graph ran


def test_bench_json_names_the_cpu_and_the_path(tiny_bert_pt, tsrun, clean_env):
    result = subprocess.run(
        [
            tsrun,
            "bench",
            str(tiny_bert_pt),
            "--batch",
            "1",
            "--seq",
            "8",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=clean_env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cpu"] and report["cpu"] != "unknown"
    assert report["kernel_path_option"] == "auto"
    assert report["kernel_path"] == ("onednn" if _fast_path_expected() else "default")


def test_unknown_kernel_path_is_refused_in_one_line(tiny_bert_pt, tsrun, clean_env):
    with pytest.raises(ValueError, match='unknown kernel path "fast" \\(expected auto, onednn or'):
        tsrunner.Runner(tiny_bert_pt, kernel_path="fast")
    # --engine is the flag's deprecated first name: the same option, the same check.
    for flag in ("--kernel-path", "--engine"):
        result = subprocess.run(
            [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", flag, "fast"],
            capture_output=True,
            text=True,
            env=clean_env,
        )
        assert result.returncode == 2
        assert "--kernel-path: fast not in {auto,onednn,default}" in result.stderr.splitlines()[0]
    old_name = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", "--engine", "default"],
        capture_output=True,
        text=True,
        env=clean_env,
    )
    assert old_name.returncode == 0, old_name.stderr
