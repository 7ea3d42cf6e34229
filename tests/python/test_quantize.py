"""`--quantize int8`: tsrunner's int8 Linear layers, traced, run by the same runner, held to the
accuracy gate on real text (tsrunner.accuracy_gate)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

import tsrunner
from conftest import SMOKE_GATE_SENTENCES
from tsrunner import accuracy_gate, quantize
from tsrunner.aoti import cpu_flags


@pytest.fixture(scope="module")
def tiny_int8(tiny_int8_export):
    return tiny_int8_export


def test_int8_export_records_its_gate(tiny_int8):
    path, report = tiny_int8
    quantization = tsrunner.read_manifest(path)["quantization"]
    assert quantization["mode"] == "int8" and quantization["kernel"] == "tsrunner::linear_int8"
    accuracy = quantization["accuracy"]
    assert accuracy["passed"] is True and accuracy["kind"] == "embedding"
    assert accuracy["sentences"] == SMOKE_GATE_SENTENCES
    assert accuracy["gate"] == {
        "mean_cosine": 0.999, "min_cosine": 0.995, "nearest_neighbour": 0.99, "labels": 0.995
    }  # fmt: skip
    assert accuracy["mean_cosine"] >= 0.999 and accuracy["min_cosine"] >= 0.995
    assert accuracy["nearest_neighbour"] >= 0.99
    assert accuracy["min_cosine"] <= accuracy["mean_cosine"] <= 1.0 + 1e-9
    assert "gate passed" in report.summary()


def test_int8_archive_calls_the_int8_kernel_and_runs_in_the_runner(tiny_int8, tiny_bert_pt):
    path, _ = tiny_int8
    graph = str(torch.jit.load(str(path)).inlined_graph)
    assert "tsrunner::linear_int8" in graph and "quantized::" not in graph
    inputs = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102], [101, 2088, 2003, 102]]),
        "attention_mask": torch.ones(2, 4, dtype=torch.long),
    }
    int8_out = tsrunner.Runner(path, threads=1).run(inputs)["last_hidden_state"]
    float_out = tsrunner.Runner(tiny_bert_pt, threads=1).run(inputs)["last_hidden_state"]
    assert int8_out.shape == float_out.shape
    assert not torch.equal(int8_out, float_out)  # it really is a different model
    cosine = torch.nn.functional.cosine_similarity(int8_out.mean(1), float_out.mean(1))
    assert cosine.min() > 0.995


def test_int8_weights_are_stored_once_as_int8(tiny_int8):
    path, _ = tiny_int8
    module = torch.jit.load(str(path))
    dtypes = {}
    for name, tensor in module.state_dict().items():
        dtypes.setdefault(tensor.dtype, []).append(name)
    panels = [name for name in dtypes.get(torch.int8, []) if name.endswith("panels")]
    assert panels, dtypes.keys()
    float_matrices = [
        name for name, t in module.state_dict().items() if t.dtype == torch.float32 and t.dim() == 2
    ]
    kept = tsrunner.read_manifest(path)["quantization"]["float_layers"]
    # Only embeddings and the Linear layers kept in float32 hold float matrices.
    assert all("embeddings" in name or any(k in name for k in kept) for name in float_matrices)


@pytest.mark.parametrize("epilogue", ["gelu", "gelu-tanh", "residual", "residual-broadcast"])
def test_int8_epilogue_equals_the_ops_it_folds(epilogue):
    # What the load-time rewrite folds into tsrunner::linear_int8 (a GELU, a residual add: the
    # latter added after the GEMM where it broadcasts) gives what the separate ops give.
    generator = torch.Generator().manual_seed(0)
    n, k = 40, 36  # a partial panel of 8 columns; K a multiple of 4
    x = torch.randn(3, 5, k, generator=generator)
    weight = torch.randint(-127, 128, (n, k), generator=generator, dtype=torch.int8)
    ops = torch.ops.tsrunner
    args = (
        x,
        ops.pack_int8_panels(weight),
        torch.rand(n, generator=generator) * 0.01 + 1e-3,
        weight.sum(1, dtype=torch.int32),
        torch.randn(n, generator=generator),
        None,
        n,
    )
    plain = ops.linear_int8(*args)
    if epilogue.startswith("gelu"):
        approximate = "tanh" if epilogue.endswith("tanh") else "none"
        got = ops.linear_int8(*args, "gelu", approximate, None)
        want = torch.nn.functional.gelu(plain, approximate=approximate)
    else:
        shape = (3, 5, n) if epilogue == "residual" else (n,)
        other = torch.randn(shape, generator=generator)
        got = ops.linear_int8(*args, "none", None, other)
        want = plain + other
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    with pytest.raises(RuntimeError, match="attr must be none or gelu, not relu"):
        ops.linear_int8(*args, "relu", None, None)


def test_runner_merges_int8_qkv_and_folds_gelu_and_residual_adds(tiny_int8):
    # tiny_bert: 2 layers, hidden 32 (whole panels: Q/K/V merge), intermediate 37. Q, K and V
    # are smoothed alike at export, so each layer's three become one GEMM that the attention
    # reads in place; each GELU and both residual adds go into an int8 epilogue.
    path, _ = tiny_int8
    runner = tsrunner.Runner(path, threads=2)
    reason = runner.kernel_path_reason
    assert "2 Q/K/V groups merged, 2 GELUs and 4 residual adds folded" in reason, reason
    assert "(2 reading the Q/K/V GEMM's output in place)" in reason, reason
    assert "int8 Linear layers on tsrunner::linear_int8" in reason, reason
    plain = tsrunner.Runner(path, threads=2, kernel_path="default")  # the graph as exported
    inputs = {
        "input_ids": torch.tensor([[101, 7592, 2088, 2003, 102], [101, 2088, 102, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
    }
    got = runner.run(inputs)["last_hidden_state"]
    want = plain.run(inputs)["last_hidden_state"]
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(got[mask], want[mask], rtol=0, atol=1e-4)


def test_runner_on_the_256_bit_int8_tiles_gives_the_512_bit_tiles_bits(tiny_int8, monkeypatch):
    # TSR_TEST_INT8_KERNEL=avx_vnni: the AVX-VNNI tiles (on an AVX-512 CPU their EVEX encoding,
    # the same code). The sums are exact and the epilogue is the same float operations in the
    # same order, so the outputs are equal to the bit, GELU and residual folds included.
    flags = cpu_flags()
    runnable = ["generic"]
    if "avx_vnni" in flags or {"avx512_vnni", "avx512vl"} <= flags:
        runnable.append("avx_vnni")
    if "avx512_vnni" in flags:
        runnable.append("avx512_vnni")
    path, _ = tiny_int8
    inputs = {
        "input_ids": torch.tensor([[101, 7592, 2088, 2003, 102], [101, 2088, 102, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
    }
    outputs = {}
    for kernel in runnable:
        monkeypatch.setenv("TSR_TEST_INT8_KERNEL", kernel)
        runner = tsrunner.Runner(path, threads=2)
        name = {"generic": "plain C++", "avx512_vnni": "AVX512-VNNI"}.get(kernel, "AVX-VNNI")
        assert f"on tsrunner::linear_int8 ({name}" in runner.kernel_path_reason
        assert "GELUs and 4 residual adds folded" in runner.kernel_path_reason
        outputs[kernel] = runner.run(inputs)["last_hidden_state"]
    for kernel in runnable[1:]:
        assert torch.equal(outputs[kernel], outputs["generic"]), kernel
    monkeypatch.setenv("TSR_TEST_INT8_KERNEL", "sse2")
    with pytest.raises(tsrunner.InvalidInput, match="TSR_TEST_INT8_KERNEL must be avx512_vnni"):
        tsrunner.Runner(path, threads=2)


def test_export_that_misses_the_gate_fails_with_the_numbers(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy_gate, "GATE_SENTENCES", 200)
    path = tmp_path / "refused.pt"
    too_strict = "mean_cosine=1.0,min_cosine=1.0"  # int8 never equals float32 exactly
    with pytest.raises(tsrunner.ExportError) as refused:
        tsrunner.export(
            tiny_bert_dir, path, max_length=32, quantize="int8", accuracy_gate=too_strict
        )
    message = str(refused.value)
    assert "int8 accuracy on real text is too low" in message and "200 sentences" in message
    assert re.search(r"cosine mean 0\.9\d{3,} \(needs 1\.0\); cosine min 0\.9\d{3,}", message)
    assert "--compute bf16" in message  # the precision that keeps the answers, where int8 can't
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_a_lower_gate_is_accepted_and_recorded(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy_gate, "GATE_SENTENCES", 200)
    path = tmp_path / "lower.pt"
    tsrunner.export(
        tiny_bert_dir, path, max_length=32, quantize="int8", accuracy_gate="nearest_neighbour=0.9"
    )
    accuracy = tsrunner.read_manifest(path)["quantization"]["accuracy"]
    assert accuracy["gate"]["nearest_neighbour"] == 0.9 and accuracy["sentences"] == 200


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("mean_cosine", "expected NAME=VALUE"),
        ("cosine=0.9", "unknown bar 'cosine'"),
        ("labels=high", "labels must be a number"),
        ("min_cosine=2", "min_cosine must be within [-1, 1]"),
    ],
)
def test_bad_accuracy_gate_is_a_value_error(tiny_bert_dir, tmp_path, gate, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tsrunner.export(tiny_bert_dir, tmp_path / "x.pt", quantize="int8", accuracy_gate=gate)
    with pytest.raises(ValueError, match="accuracy_gate applies to --quantize int8"):
        tsrunner.export(tiny_bert_dir, tmp_path / "x.pt", accuracy_gate="labels=0.9")


def test_unknown_quantize_mode_is_a_value_error(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        tsrunner.export(tiny_bert_dir, tmp_path / "x.pt", quantize="int4")


def test_cli_quantize_flag(tiny_bert_dir, tmp_path):
    path = tmp_path / "cli_int8.pt"
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", str(tiny_bert_dir), "-o", str(path),
         "--max-length", "16", "--quantize", "int8"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "int8 vs float32 on 2000 real sentences" in result.stdout
    info = subprocess.run(
        [sys.executable, "-m", "tsrunner", "info", str(path), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert json.loads(info.stdout)["quantization"]["accuracy"]["passed"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", str(tiny_bert_dir), "-o", str(path),
         "--quantize", "int4"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_minilm_int8_keeps_its_embeddings_on_real_text(minilm_dir):
    # The real model, end to end through tsrunner::linear_int8, at smoke size: the export's
    # own choices (smoothing, float layers) on calibration text, then 200 gate sentences. The
    # full 2,000-sentence gate runs at every export (docs/benchmarks.md has its numbers).
    from transformers import AutoModel

    model = AutoModel.from_pretrained(minilm_dir).eval()
    tokenizer = (minilm_dir / "tokenizer.json").read_text()
    specs = [
        type("Spec", (), {"name": n}) for n in ("input_ids", "attention_mask", "token_type_ids")
    ]

    def batches(sentences):
        return quantize.text_batches(specs, tokenizer, 0, 128, None, sentences)

    def wrap(m):
        return lambda *inputs: m(*inputs)

    gate = accuracy_gate.Gate(nearest_neighbour=0.95)  # 97% on 2,000: docs/benchmarks.md
    quantized, kept, _, calibration = quantize.choose_quantized_model(
        model, wrap, batches(quantize.calibration_sentences()), "embedding", gate
    )
    assert calibration.passed_cosine and kept == []
    gate_batches = batches(accuracy_gate.gate_sentences(200))
    reference = accuracy_gate.vectors(wrap(model), gate_batches, "embedding")
    result = accuracy_gate.compare(reference, wrap(quantized), gate_batches, "embedding", gate)
    assert result.passed, result.summary()
    assert result.mean_cosine >= 0.999 and result.min_cosine >= 0.995
