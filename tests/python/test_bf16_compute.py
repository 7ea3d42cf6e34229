"""The opt-in bf16 compute for float32 archives (RunnerOptions.compute = "bf16").

compute="bf16" packs the Linear weights in bfloat16 at load and runs those GEMMs in bf16 with
float32 accumulation (tsrunner::linear_bf16); everything else stays float32. It is never the
default, and it is refused in one line where it cannot run well (no AVX512_BF16 / AMX-BF16,
engine=default).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

import tsrunner
from tsrunner import sample_text
from tsrunner.aoti import cpu_flags

_FLAGS = cpu_flags()
needs_bf16 = pytest.mark.skipif(
    not {"avx512_bf16", "amx_bf16"} & _FLAGS,
    reason="CPU without AVX512_BF16 or AMX-BF16: refused, tested below",
)
# tsrunner's own bf16 kernel runs where VDPBF16PS exists and AMX does not (bf16_gemm.h).
_BF16_KERNEL_CPU = "avx512_bf16" in _FLAGS and "amx_bf16" not in _FLAGS
needs_bf16_kernel = pytest.mark.skipif(
    not _BF16_KERNEL_CPU, reason="tsrunner's bf16 kernel needs AVX512_BF16 (and no AMX)"
)


def test_fp32_is_the_default():
    assert tsrunner.RunnerOptions().compute == "fp32"


@needs_bf16
@pytest.mark.parametrize("attr, with_other", [("none", False), ("gelu", False), ("none", True)])
def test_linear_bf16_is_the_linear_of_bf16_rounded_operands(attr, with_other):
    # What bf16 compute does, computed exactly: x and the weight rounded to bf16, products
    # accumulated in float32 with the float32 bias, the result rounded once to bf16 (relative
    # error <= 2^-9), then the residual added in float32. Tolerance: that one rounding.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 384, generator=generator)
    weight = torch.randn(96, 384, generator=generator) / 20
    bias = torch.randn(96, generator=generator)
    other = torch.randn(3, 7, 96, generator=generator) if with_other else None
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.bfloat16(), None)
    algorithm = "none" if attr == "gelu" else None
    got = torch.ops.tsrunner.linear_bf16(x, packed, bias, attr, algorithm, other)
    want = torch.nn.functional.linear(
        x.bfloat16().double(), weight.bfloat16().double(), bias.double()
    )
    if attr == "gelu":
        want = torch.nn.functional.gelu(want)
    assert got.dtype == torch.float32 and got.shape == want.shape
    rounding = want.abs() * 2.0**-8 + 1e-5  # one bf16 rounding, with margin for the order of sums
    core = got - (other if other is not None else 0)
    assert ((core.double() - want).abs() <= rounding).all()
    # and not float32's answer: the weights really were bf16
    assert not torch.allclose(got, torch.nn.functional.linear(x, weight, bias) + (
        other if other is not None else 0), rtol=0, atol=1e-6)  # fmt: skip


def _bf16_reference(x, weight, bias):
    """The linear of bf16-rounded x and weight, summed exactly (float64), and the sum of the
    products' magnitudes: float32 summation of k products errs by at most ~k * 2^-24 of it."""
    xb, wb = x.bfloat16().double(), weight.bfloat16().double()
    exact = torch.nn.functional.linear(xb, wb, None if bias is None else bias.double())
    magnitude = torch.nn.functional.linear(xb.abs(), wb.abs())
    return exact, magnitude


@needs_bf16_kernel
@pytest.mark.parametrize(
    ("rows", "n", "k"),
    [
        (1, 16, 384),
        (15, 40, 7),
        (17, 1, 33),
        (13, 20, 33),  # two panels, the second partial: the wide tile's masked half
        (64, 33, 32),
        (80, 50, 384),
        (65, 100, 384),
        (300, 48, 1536),
    ],
)
@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual", "broadcast residual"])
def test_bf16_kernel_is_the_linear_of_bf16_rounded_operands_on_ragged_shapes(rows, n, k, epilogue):
    # Unlike oneDNN's bf16 linear the kernel never rounds its float32 sum to bf16: it must
    # agree with the exact sum to float32 summation error, far inside one bf16 rounding.
    generator = torch.Generator().manual_seed(rows * 1000 + n + k)
    x = torch.randn(rows, k, generator=generator)
    weight = torch.randn(n, k, generator=generator) / 10
    bias = None if epilogue == "residual" else torch.randn(n, generator=generator)
    other = {
        "residual": torch.randn(rows, n, generator=generator),
        "broadcast residual": torch.randn(n, generator=generator),
    }.get(epilogue)
    panels = torch.ops.tsrunner.pack_bf16_panels(weight)
    assert panels.dtype == torch.bfloat16 and panels.shape == ((n + 15) // 16, (k + 1) // 2, 16, 2)
    attr, algorithm = ("gelu", "tanh") if epilogue == "gelu" else ("none", None)
    got = torch.ops.tsrunner.linear_bf16_panels(x, panels, n, bias, attr, algorithm, other)
    exact, magnitude = _bf16_reference(x, weight, bias)
    if epilogue == "gelu":
        exact = torch.nn.functional.gelu(exact, approximate="tanh")
    if other is not None:
        exact = exact + other.double()
    assert got.dtype == torch.float32 and got.shape == (rows, n)
    bound = magnitude * k * 2.0**-24 + exact.abs() * 2.0**-22 + 1e-6
    assert ((got.double() - exact).abs() <= bound).all()
    # and not float32's answer: the operands really were bf16
    fp32 = torch.nn.functional.linear(x, weight, bias)
    assert not torch.allclose(got - (0 if other is None else other), fp32, rtol=0, atol=1e-5) or (
        epilogue == "gelu"
    )


@needs_bf16_kernel
@pytest.mark.parametrize(("rows", "n"), [(40, 1536), (300, 1536), (150, 30), (100, 1536)])
def test_bf16_kernel_result_does_not_depend_on_the_thread_count(rows, n):
    # 1 thread splits nothing; 2 threads split the columns at 40 and 150 rows, the rows at 300;
    # 7 threads split 100 rows' columns. With n=30 a 72-row block of GELU is not a whole number
    # of vectors: LibTorch's scalar tail would move with any other way of cutting the pieces.
    generator = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 384, generator=generator)
    weight = torch.randn(n, 384, generator=generator) / 20
    bias = torch.randn(n, generator=generator)
    panels = torch.ops.tsrunner.pack_bf16_panels(weight)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 7):
            torch.set_num_threads(threads)
            results.append(
                torch.ops.tsrunner.linear_bf16_panels(x, panels, n, bias, "gelu", "none", None)
            )
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_bf16_kernel_op_refuses_a_cpu_without_avx512_bf16(monkeypatch):
    # TSR_TEST_CPU_WITHOUT_BF16=1 hides the CPU's bf16 instructions (docs/testing.md): the op
    # says so instead of dying of an illegal instruction.
    monkeypatch.setenv("TSR_TEST_CPU_WITHOUT_BF16", "1")
    panels = torch.ops.tsrunner.pack_bf16_panels(torch.randn(16, 8))
    with pytest.raises(RuntimeError, match=r"needs a CPU with AVX512_BF16; this one .* has none"):
        torch.ops.tsrunner.linear_bf16_panels(
            torch.randn(2, 8), panels, 16, None, "none", None, None
        )


@needs_bf16_kernel
def test_bf16_kernel_op_refuses_tensors_off_the_cpu():
    panels = torch.ops.tsrunner.pack_bf16_panels(torch.randn(16, 8))
    x = torch.randn(2, 8, device="meta")
    with pytest.raises(RuntimeError, match="runs on the CPU; got a tensor on meta"):
        torch.ops.tsrunner.linear_bf16_panels(x, panels, 16, None, "none", None, None)


@needs_bf16_kernel
@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual"])
def test_bf16_kernel_with_k_0_is_the_bias_as_linear_gives(epilogue):
    x = torch.randn(3, 0)
    bias = torch.randn(5)
    other = torch.randn(3, 5) if epilogue == "residual" else None
    panels = torch.ops.tsrunner.pack_bf16_panels(torch.randn(5, 0))
    attr = "gelu" if epilogue == "gelu" else "none"
    got = torch.ops.tsrunner.linear_bf16_panels(x, panels, 5, bias, attr, "none", other)
    want = torch.nn.functional.linear(x, torch.zeros(5, 0), bias)
    if epilogue == "gelu":
        want = torch.nn.functional.gelu(want)
    if other is not None:
        want = want + other
    assert torch.equal(got, want)


@needs_bf16_kernel
def test_bf16_kernel_refuses_panels_and_bias_that_do_not_fit():
    weight = torch.randn(40, 24)
    panels = torch.ops.tsrunner.pack_bf16_panels(weight)
    x = torch.randn(3, 24)
    cases = [
        (panels, 40, torch.zeros(39), "bias must hold 40 float32 values"),
        (panels[:2].contiguous(), 40, None, "panels must be pack_bf16_panels"),
        (panels, 49, None, "panels must be pack_bf16_panels"),
        (panels.float(), 40, None, "panels must be pack_bf16_panels"),
        (torch.ops.tsrunner.pack_bf16_panels(torch.randn(40, 26)), 40, None, "pack_bf16_panels"),
    ]
    for bad_panels, n, bias, message in cases:
        with pytest.raises(RuntimeError, match=message):
            torch.ops.tsrunner.linear_bf16_panels(x, bad_panels, n, bias, "none", None, None)


@needs_bf16
@pytest.mark.parametrize("kernel", ["1", "0"])
def test_bf16_embeddings_stay_close_to_fp32_on_real_text(minilm_pt, kernel, monkeypatch):
    # TSR_BF16_KERNEL=0 keeps the GEMMs on oneDNN's bf16 where tsrunner's kernel would run.
    monkeypatch.setenv("TSR_BF16_KERNEL", kernel)
    texts = sample_text.sample(32)
    fp32 = tsrunner.Runner(minilm_pt, threads=2)
    bf16 = tsrunner.Runner(minilm_pt, threads=2, compute="bf16")
    assert bf16.kernel_path == "onednn"
    assert "bf16 compute" in bf16.kernel_path_reason and "bf16" not in fp32.kernel_path_reason
    on_kernel = "on tsrunner's AVX512-BF16 kernel" in bf16.kernel_path_reason
    assert on_kernel == (_BF16_KERNEL_CPU and kernel == "1"), bf16.kernel_path_reason
    want = np.array([row["embedding"] for row in fp32.predict(texts)], dtype=np.float64)
    got = np.array([row["embedding"] for row in bf16.predict(texts)], dtype=np.float64)
    cosine = np.sum(want * got, axis=1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    # On the 2,000-sentence corpus the worst cosine measured 0.999965 (benchmarks/
    # bf16_accuracy.py, docs/benchmarks.md); 0.9999 is the project's same-embeddings gate.
    assert cosine.min() >= 0.9999, cosine.min()
    assert cosine.min() < 1 - 1e-7  # bf16 did run: fp32 would agree to float32 rounding


def test_unknown_compute_is_refused_in_one_line(tiny_bert_pt, tsrun, clean_env):
    with pytest.raises(ValueError, match='unknown compute "fp16" \\(expected fp32 or bf16\\)'):
        tsrunner.Runner(tiny_bert_pt, compute="fp16")
    result = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", "--compute", "fp16"],
        capture_output=True,
        text=True,
        env=clean_env,
    )
    assert result.returncode == 2
    assert "--compute: fp16 not in {fp32,bf16}" in result.stderr.splitlines()[0]


def test_bf16_with_engine_default_is_refused(tiny_bert_pt):
    with pytest.raises(
        ValueError, match="compute=bf16 runs on the oneDNN kernel path, not kernel_path="
    ):
        tsrunner.Runner(tiny_bert_pt, kernel_path="default", compute="bf16")


def test_bf16_is_refused_in_one_line_on_a_cpu_without_bf16(
    tiny_bert_pt, tsrun, clean_env, monkeypatch
):
    # TSR_TEST_CPU_WITHOUT_BF16=1 hides the CPU's bf16 instructions from the check (a test
    # hook, docs/testing.md): what a CPU without them (Zen 3, Skylake) gets.
    monkeypatch.setenv("TSR_TEST_CPU_WITHOUT_BF16", "1")
    with pytest.raises(ValueError, match=r"compute=bf16 is not available: this CPU .* has neither"):
        tsrunner.Runner(tiny_bert_pt, compute="bf16")
    assert tsrunner.Runner(tiny_bert_pt).kernel_path in ("onednn", "default")  # fp32 unaffected
    result = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,7592,102", "--raw", "--compute", "bf16"],
        capture_output=True,
        text=True,
        env={**clean_env, "TSR_TEST_CPU_WITHOUT_BF16": "1"},
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "AVX512_BF16 nor AMX-BF16" in lines[0], result.stderr


@needs_bf16
def test_tsrun_and_bench_take_compute_bf16(tiny_bert_pt, tsrun, clean_env):
    ids = ["--ids", "101,7592,2088,102"]
    outputs = {}
    for compute in ("fp32", "bf16"):
        command = [tsrun, str(tiny_bert_pt), *ids, "--raw", "--compute", compute]
        result = subprocess.run(command, capture_output=True, text=True, env=clean_env)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        outputs[compute] = json.loads(result.stdout)
    for name, fp32 in outputs["fp32"].items():
        want = torch.tensor(fp32["data"])
        got = torch.tensor(outputs["bf16"][name]["data"])
        assert not torch.equal(got, want), name  # a one-shot run still took bf16
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)
    bench = [tsrun, "bench", str(tiny_bert_pt), "--batch", "1", "--seq", "8", "--iterations"]
    bench += ["2", "--warmup", "0", "--json", "--compute", "bf16"]
    result = subprocess.run(bench, capture_output=True, text=True, env=clean_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["compute"] == "bf16" and report["kernel_path"] == "onednn"
    assert "bf16 compute" in report["kernel_path_reason"]


def test_bf16_is_refused_for_an_aoti_package(tiny_bert_pt2):
    with pytest.raises(ValueError, match=r"compute=bf16 applies to TorchScript \.pt archives"):
        tsrunner.Runner(tiny_bert_pt2, compute="bf16")


@needs_bf16
def test_serve_takes_compute_bf16(minilm_pt, tsrun):
    from serve_process import Server, environment_without_api_key

    texts = sample_text.sample(4)
    bf16 = tsrunner.Runner(minilm_pt, threads=1, compute="bf16")
    fp32 = tsrunner.Runner(minilm_pt, threads=1)
    command = ["--compute", "bf16"]
    with Server(tsrun, [minilm_pt], *command, env=environment_without_api_key()) as server:
        status, _, info = server.request("GET", "/info")
        assert status == 200
        assert [(m["kernel_path"], m["compute"]) for m in json.loads(info)["models"]] == [
            ("onednn", "bf16")
        ]
        got = np.array([server.post("/embed", {"inputs": text})[1][0] for text in texts])
    # One text per request runs as a batch of one: the Runner's bf16 answer for that text alone
    # (in a padded batch bf16 rounds differently).
    want = np.array([bf16.predict([text])[0]["embedding"] for text in texts])
    np.testing.assert_allclose(got, want, atol=1e-6)
    exact = np.array([fp32.predict([text])[0]["embedding"] for text in texts])
    assert np.abs(got - exact).max() > 1e-6  # and not fp32's: the server really ran bf16


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (
            ["--kernel-path", "default"],
            {},
            "compute=bf16 runs on the oneDNN kernel path, not kernel_path=",
        ),
        ([], {"TSR_TEST_CPU_WITHOUT_BF16": "1"}, "AVX512_BF16 nor AMX-BF16"),
    ],
)
def test_serve_refuses_bf16_in_one_line_where_the_runner_does(
    tiny_bert_pt, tsrun, clean_env, extra, env, message
):
    command = [tsrun, "serve", str(tiny_bert_pt), "--port", "0", "--compute", "bf16", *extra]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**clean_env, **env}, timeout=120
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
