"""The exporter: one validated TorchScript archive with its manifest, tokenizer and config."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import jsonschema
import pytest
import torch

import tsrunner
from tsrunner import manifest as manifest_module


def _records(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {
            name.split("/extra/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if "/extra/" in name
        }


def test_manifest_follows_the_schema(tiny_bert_pt):
    manifest = tsrunner.read_manifest(tiny_bert_pt)
    jsonschema.validate(manifest, manifest_module.schema())
    assert manifest["schema_version"] == 2
    assert manifest["task"] == "feature-extraction"
    assert manifest["backend"] == "jit"
    assert manifest["model"] == {
        "type": "bert",
        "class": "BertModel",
        "source": "tiny_bert",
        "attn_implementation": manifest["model"]["attn_implementation"],
        "dtype": "float32",
        "traced_on": "cpu",
    }
    assert [i["name"] for i in manifest["inputs"]] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert all(i["dtype"] == "int64" for i in manifest["inputs"])
    assert manifest["inputs"][0]["range"] == [0, 30522]
    assert [o["name"] for o in manifest["outputs"]] == ["last_hidden_state", "pooler_output"]
    assert manifest["outputs"][0]["shape"] == ["batch", "sequence", 32]
    assert manifest["outputs"][1]["shape"] == ["batch", 32]
    assert manifest["max_length"] == 64
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["tsrunner"] == tsrunner.__version__


def test_archive_embeds_tokenizer_and_config(tiny_bert_pt, tiny_bert_dir):
    records = _records(tiny_bert_pt)
    assert set(records) == {
        "tsrunner/manifest.json",
        "tsrunner/tokenizer.json",
        "tsrunner/config.json",
        "tsrunner/digest.json",
    }
    assert records["tsrunner/tokenizer.json"] == (tiny_bert_dir / "tokenizer.json").read_bytes()
    config = json.loads(records["tsrunner/config.json"])
    assert config["model_type"] == "bert" and config["hidden_size"] == 32


def test_validation_covers_several_shapes(tiny_bert_pt):
    validation = tsrunner.read_manifest(tiny_bert_pt)["validation"]
    checks = validation["checks"]
    shapes = {(c["batch"], c["sequence"]) for c in checks}
    assert len(shapes) >= 4
    assert any(c["sequence"] == 1 for c in checks)
    assert any(c["sequence"] % 2 == 1 for c in checks)
    assert any(c["padded"] and c["batch"] > 1 for c in checks)
    assert validation["passed"] and all(c["passed"] for c in checks)
    assert all(d <= validation["atol"] for c in checks for d in c["max_abs_diff"].values())
    contract = tsrunner.read_manifest(tiny_bert_pt)["shape_contract"]
    assert contract["kind"] == "dynamic"
    assert (contract["min_sequence"], contract["max_sequence"]) == (1, 64)


def test_plain_pytorch_loads_the_archive(tiny_bert_pt, tiny_bert_dir):
    """As in the original docs: torch.jit.load(path)(*inputs), no tsrunner involved."""
    import transformers

    module = torch.jit.load(str(tiny_bert_pt))
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2054, 2003, 2023, 102]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    last_hidden_state, pooled = module(ids, mask, types)
    eager = transformers.BertModel.from_pretrained(tiny_bert_dir).eval()
    with torch.no_grad():
        expected = eager(input_ids=ids, attention_mask=mask, token_type_ids=types)
    torch.testing.assert_close(last_hidden_state, expected.last_hidden_state, rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled, expected.pooler_output, rtol=0, atol=1e-5)


def test_fixed_shapes_record_the_traced_length(tiny_bert_dir, tmp_path):
    path = tmp_path / "fixed.pt"
    report = tsrunner.export(tiny_bert_dir, path, max_length=16, shapes="fixed")
    contract = report.manifest["shape_contract"]
    assert contract["kind"] == "fixed"
    assert contract["min_sequence"] == contract["max_sequence"] == 16
    runner = tsrunner.Runner(path)
    ids = torch.full((1, 16), 1000)
    assert runner.run({"input_ids": ids})["last_hidden_state"].shape == (1, 16, 32)


def test_report_summary_reads_like_a_validation_table(tiny_bert_dir, tmp_path):
    report = tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", max_length=8)
    text = report.summary()
    assert "Validating the trace against the eager model (atol 0.0001)" in text
    assert "[ok] batch  2, sequence    8 (padded)" in text
    assert "compared where attention_mask is 1; values at padding mean nothing" in text
    assert "Shape contract: dynamic, sequence 1..8" in text
    assert report.passed and report.size_bytes == (tmp_path / "m.pt").stat().st_size


def test_failed_validation_writes_nothing_and_keeps_the_old_file(
    tiny_bert_dir, tmp_path, monkeypatch
):
    from tsrunner import exporter as export_module

    path = tmp_path / "model.pt"
    path.write_bytes(b"previous export")

    def disagree(eager, traced, inputs, names, atol, *, shape, padded, attention_mask=None):
        diffs = {name: 1.0 for name in names}
        return export_module.ShapeCheck(shape.batch, shape.sequence, padded, diffs, False)

    monkeypatch.setattr(export_module, "check_shape", disagree)
    with pytest.raises(tsrunner.ExportError, match="nothing was written"):
        tsrunner.export(tiny_bert_dir, path, max_length=8)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "no temporary file left behind"


def test_untraceable_model_fails_saying_why_and_what_to_try(tiny_bert_dir, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Encountering a dict at the output of the tracer\nmore detail")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    with pytest.raises(tsrunner.ExportError) as caught:
        tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", max_length=8)
    message = str(caught.value)
    assert message.startswith("BertModel could not be traced: Encountering a dict at the output")
    assert "try another --task" in message and "\n" not in message
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_length": 0}, "max_length must be at least 1"),
        ({"max_length": 4096}, "exceeds the model's 128 position embeddings"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"shapes": "elastic"}, "shapes must be one of"),
        ({"task": "translation"}, "unsupported task 'translation'"),
        ({"atol": 0.0}, "atol must be positive"),
        ({"buckets": [8, 16], "max_length": 8}, "differs from the largest bucket 16"),
        ({"buckets": [8, 16], "shapes": "dynamic"}, "cannot be combined with shapes=dynamic"),
        ({"buckets": [0, 16]}, "buckets must be positive lengths"),
        ({"dtype": "float64"}, "dtype must be one of float32, float16, bfloat16"),
        ({"device": "tpu"}, "device must be cpu or cuda"),
    ],
)
def test_bad_arguments_are_value_errors(tiny_bert_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", **kwargs)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"buckets": "16,32"},
            r"buckets must be a list of lengths such as \[32, 64, 128\], not str '16,32'",
        ),
        ({"buckets": [16, "32"]}, "every bucket must be an integer, not str '32'"),
        ({"max_length": "64"}, "max_length must be an integer, not str '64'"),
        ({"batch_size": 2.0}, "batch_size must be an integer, not float 2.0"),
        ({"atol": "1e-3"}, "atol must be a number, not str"),
        ({"untie_weights": "yes"}, "untie_weights must be True or False"),
        ({"dtype": None}, "dtype must be a string, not NoneType"),
    ],
)
def test_arguments_of_the_wrong_type_are_named_before_loading(tmp_path, kwargs, message):
    # The model does not exist: the type check comes first, before anything is loaded. Bad
    # input is a ValueError throughout tsrunner (docs/stable-api.md); a wrong type is both.
    with pytest.raises(TypeError, match=message) as caught:
        tsrunner.export(tmp_path / "no_such_model", tmp_path / "m.pt", **kwargs)
    assert isinstance(caught.value, ValueError)
    assert not (tmp_path / "m.pt").exists()


def test_bad_model_sources_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="model directory not found: bert-base-uncased"):
        tsrunner.export("bert-base-uncased", tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"has no config\.json"):
        tsrunner.export(tmp_path, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="is a directory"):
        tsrunner.export(tmp_path, tmp_path)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tsrunner", *map(str, args)], capture_output=True, text=True
    )


def test_cli_export_and_info(tiny_bert_dir, tmp_path):
    path = tmp_path / "cli.pt"
    result = _cli("export", tiny_bert_dir, "-o", path, "--max-length", "12")
    assert result.returncode == 0, result.stderr
    assert "Shape contract: dynamic, sequence 1..12" in result.stdout
    info = _cli("info", path)
    assert info.returncode == 0, info.stderr
    assert "feature-extraction" in info.stdout and "bert (BertModel)" in info.stdout
    assert "max length  12" in info.stdout
    as_json = _cli("info", path, "--json")
    assert json.loads(as_json.stdout)["max_length"] == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "no/such/model", "-o", "x.pt"], "model directory not found: no/such/model"),
        (["info", "no_such_file.pt"], "model file not found: no_such_file.pt"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tsrunner: error: {message}"), lines


def test_cli_usage_error_exits_2():
    result = _cli("export")
    assert result.returncode == 2
    assert "the following arguments are required" in result.stderr
