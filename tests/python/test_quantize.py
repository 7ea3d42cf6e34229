"""`--quantize int8`: int8 Linear layers, traced, run by the same runner, judged on real text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import tsrunner
from tsrunner import quantize


@pytest.fixture(scope="module")
def tiny_int8(tiny_int8_export):
    return tiny_int8_export


def test_int8_export_records_its_accuracy(tiny_int8):
    path, report = tiny_int8
    manifest = tsrunner.read_manifest(path)
    quantization = manifest["quantization"]
    assert quantization["mode"] == "int8" and quantization["method"] == "dynamic"
    accuracy = quantization["accuracy"]
    assert accuracy["passed"] is True and accuracy["sentences"] == quantize.ACCURACY_SENTENCES
    assert accuracy["mean_cosine"] >= 0.99 and accuracy["min_cosine"] >= 0.98
    assert accuracy["min_cosine"] <= accuracy["mean_cosine"] <= 1.0 + 1e-9
    assert "cosine mean" in report.summary()


def test_int8_archive_holds_quantized_linears_and_runs_in_the_runner(tiny_int8, tiny_bert_pt):
    path, _ = tiny_int8
    graph = str(torch.jit.load(str(path)).inlined_graph)
    assert "quantized::linear_dynamic" in graph
    inputs = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102], [101, 2088, 2003, 102]]),
        "attention_mask": torch.ones(2, 4, dtype=torch.long),
    }
    int8_out = tsrunner.Runner(path, threads=1).run(inputs)["last_hidden_state"]
    float_out = tsrunner.Runner(tiny_bert_pt, threads=1).run(inputs)["last_hidden_state"]
    assert int8_out.shape == float_out.shape
    assert not torch.equal(int8_out, float_out)  # it really is a different model
    cosine = torch.nn.functional.cosine_similarity(int8_out.mean(1), float_out.mean(1))
    assert cosine.min() > 0.98


def test_export_that_misses_the_accuracy_bar_writes_nothing(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_COSINE", 1.5)  # no model can reach it
    path = tmp_path / "refused.pt"
    with pytest.raises(tsrunner.ExportError, match="int8 accuracy on real text is too low"):
        tsrunner.export(tiny_bert_dir, path, max_length=32, quantize="int8")
    assert not path.exists() and list(tmp_path.iterdir()) == []


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
    assert "int8 vs float32 on 64 real sentences" in result.stdout
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
