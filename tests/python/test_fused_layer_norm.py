"""tsrunner::layer_norm: the few-row LayerNorm the oneDNN kernel path puts in place of
aten::layer_norm at load (TSR_FUSED_LAYER_NORM=0 turns the rewrite off).

Within float64's answer as LibTorch's kernel is, on its AVX-512 rows (multiples of 16) and the
portable loop; more rows than its limit, or a non-contiguous input, run LibTorch's kernel
itself. A Runner with the rewrite matches one without it. The graph-side matching is tested in
C++ (tests/cpp/fusion_passes_test.cc).
"""

from __future__ import annotations

import pytest
import torch

import tsrunner

THREADS = 2


@pytest.mark.parametrize(
    "shape", [(1, 16, 384), (3, 7, 32), (2, 5, 37), (64, 384), (1, 1, 16), (4, 9)]
)
def test_layer_norm_op_matches_libtorch(shape):
    generator = torch.Generator().manual_seed(shape[-1] + len(shape))
    x = torch.randn(shape, generator=generator) * 3 + 1
    n = shape[-1]
    weight = torch.randn(n, generator=generator)
    bias = torch.randn(n, generator=generator)
    with torch.inference_mode():
        got = torch.ops.tsrunner.layer_norm(x, weight, bias, 1e-12)
    want = torch.nn.functional.layer_norm(x.double(), (n,), weight.double(), bias.double(), 1e-12)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


def test_more_rows_or_a_strided_input_run_libtorchs_kernel():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(384, generator=generator)
    bias = torch.randn(384, generator=generator)
    many_rows = torch.randn(2, 33, 384, generator=generator)  # 66 rows: past the limit
    strided = torch.randn(384, 8, generator=generator).t()
    for x in (many_rows, strided):
        with torch.inference_mode():
            got = torch.ops.tsrunner.layer_norm(x, weight, bias, 1e-5)
            want = torch.nn.functional.layer_norm(x, (384,), weight, bias, 1e-5)
        assert torch.equal(got, want)


def test_runner_with_fused_layer_norms_matches_the_unfused_graph(tiny_bert_pt, monkeypatch):
    monkeypatch.setenv("TSR_FUSED_LAYER_NORM", "0")
    plain = tsrunner.Runner(tiny_bert_pt, threads=THREADS, kernel_path="onednn")
    monkeypatch.delenv("TSR_FUSED_LAYER_NORM")
    fused = tsrunner.Runner(tiny_bert_pt, threads=THREADS, kernel_path="onednn")
    assert "layer norms on the few-row kernel" not in plain.kernel_path_reason
    # tiny BERT: the embeddings' and two per layer, 2 layers.
    assert "5 layer norms on the few-row kernel" in fused.kernel_path_reason, (
        fused.kernel_path_reason
    )
    generator = torch.Generator().manual_seed(0)
    for batch, length in [(1, 16), (3, 13), (2, 40)]:  # 80 rows: LibTorch's kernel
        ids = torch.randint(1000, 20000, (batch, length), generator=generator)
        mask = torch.ones_like(ids)
        mask[1:, length // 2 :] = 0
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        inputs = {name: inputs[name] for name in plain.input_names}
        want = plain.run(inputs)
        got = fused.run(inputs)
        for name, tensor in want.items():
            torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-5)
