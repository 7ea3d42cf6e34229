"""Where models come from (local directories, hub ids offline, remote code) and what they are
traced as (device, dtype)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import transformers

import tsrunner


def test_hub_id_offline_names_local_directories_and_hf_hub_offline(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", "bert-base-uncased", "-o", tmp_path / "m.pt"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tsrunner: error: model directory not found: bert-base-uncased")
    assert "--local-dir DIR" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert not (tmp_path / "m.pt").exists()


def test_revision_applies_to_hub_ids_only(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="revision applies to hub ids"):
        tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", revision="main")


def test_remote_code_is_refused_unless_trusted(tmp_path):
    directory = tmp_path / "custom"
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps(
            {
                "model_type": "tsrunner-custom",
                "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"},
            }
        )
    )
    with pytest.raises(ValueError, match="trust_remote_code"):
        tsrunner.export(directory, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_without_a_device_is_a_clear_error(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match=r"sees no CUDA device; .* or use --device cpu"):
        tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", device="cuda")


@pytest.mark.parametrize(("dtype", "atol"), [("float16", 1e-2), ("bfloat16", 5e-2)])
def test_half_precision_on_cpu_validates_with_its_own_tolerance(
    tiny_bert_dir, tmp_path, dtype, atol
):
    path = tmp_path / f"{dtype}.pt"
    report = tsrunner.export(tiny_bert_dir, path, max_length=8, dtype=dtype)
    manifest = report.manifest
    assert manifest["model"]["dtype"] == dtype
    assert manifest["validation"]["atol"] == atol
    assert [o["dtype"] for o in manifest["outputs"]] == [dtype, dtype]
    assert f"(atol {atol:g})" in report.summary()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2054, 2003, 2023, 102]])
    mask = (ids != 0).long()
    got = tsrunner.Runner(path).run({"input_ids": ids, "attention_mask": mask})
    eager = transformers.BertModel.from_pretrained(tiny_bert_dir, dtype=getattr(torch, dtype))
    with torch.inference_mode():
        want = eager.eval()(input_ids=ids, attention_mask=mask, token_type_ids=0 * ids)
    assert got["last_hidden_state"].dtype == getattr(torch, dtype)
    torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state, rtol=0, atol=atol)
