"""tsrunner's kernel switches are options of each runner (and flags of tsrun), with the TSR_*
environment variables only as defaults (docs/environment.md)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

import tsrunner


def _inputs(length: int = 12) -> dict[str, torch.Tensor]:
    ids = torch.randint(1000, 2000, (2, length), generator=torch.Generator().manual_seed(3))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_two_runners_in_one_process_take_their_own_kernels(tiny_bert_pt):
    plain = tsrunner.Runner(
        tiny_bert_pt,
        threads=1,
        kernel_path="onednn",
        fused_attention="off",
        fused_layer_norm=False,
        small_gemm_rows=0,
    )
    fused = tsrunner.Runner(tiny_bert_pt, threads=1, kernel_path="onednn")
    assert "short-sequence kernel" not in plain.kernel_path_reason
    assert "layer norms" not in plain.kernel_path_reason
    assert "small-row" not in plain.kernel_path_reason
    assert "attentions on the short-sequence kernel" in fused.kernel_path_reason
    assert "layer norms on the few-row kernel" in fused.kernel_path_reason
    assert "up to 48 rows on the small-row AVX-512 kernel" in fused.kernel_path_reason
    rows = tsrunner.Runner(tiny_bert_pt, threads=1, kernel_path="onednn", small_gemm_rows=8)
    assert "up to 8 rows on the small-row" in rows.kernel_path_reason
    inputs = _inputs()
    want = plain.run(inputs)["last_hidden_state"]
    for runner in (fused, rows):
        torch.testing.assert_close(
            runner.run(inputs)["last_hidden_state"], want, rtol=1e-5, atol=1e-5
        )


def test_an_option_wins_over_the_environment(tiny_bert_pt, monkeypatch):
    monkeypatch.setenv("TSR_FUSED_ATTENTION", "0")
    from_environment = tsrunner.Runner(tiny_bert_pt, threads=1, kernel_path="onednn")
    assert "short-sequence kernel" not in from_environment.kernel_path_reason
    given = tsrunner.Runner(tiny_bert_pt, threads=1, kernel_path="onednn", fused_attention="on")
    assert "attentions on the short-sequence kernel" in given.kernel_path_reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fused_attention": "maybe"}, 'fused_attention must be on, op or off, not "maybe"'),
        ({"small_gemm_rows": -2}, "small_gemm_rows must be a row count >= 0, not -2"),
    ],
)
def test_bad_kernel_options_are_refused_in_one_line(tiny_bert_pt, options, message):
    with pytest.raises(ValueError, match=message):
        tsrunner.Runner(tiny_bert_pt, **options)


def test_tsrun_takes_the_kernel_flags(tsrun, tiny_bert_pt):
    result = subprocess.run(
        [
            tsrun,
            "bench",
            str(tiny_bert_pt),
            "--batch",
            "1",
            "--seq",
            "16",
            "--iterations",
            "2",
            "--threads",
            "1",
            "--json",
            "--kernel-path",
            "onednn",
            "--fused-attention",
            "off",
            "--small-gemm-rows",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    reason = json.loads(result.stdout)["kernel_path_reason"]
    assert "short-sequence kernel" not in reason and "small-row" not in reason, reason
    refused = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--fused-attention", "sometimes"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0 and "--fused-attention" in refused.stderr
