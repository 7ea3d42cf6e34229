"""Triton model repositories: config.pbtxt generated from the manifest and checked with
Triton's own ModelConfig schema (shipped in the tritonclient package). Triton itself cannot
run here (no server binary or container on this machine); docs/triton.md says how to run it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import tsrunner
from tsrunner.triton import TritonOptions, config_pbtxt, write_model_repository

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
DATA_TYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32"}


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _check_against_manifest(config, manifest, *, batched: bool) -> None:
    """Every tensor in the config matches the manifest, in the traced positional order."""
    for kind, specs, entries in (
        ("input", manifest["inputs"], config.input),
        ("output", manifest["outputs"], config.output),
    ):
        assert len(entries) == len(specs), kind
        for index, (entry, spec) in enumerate(zip(entries, specs, strict=True)):
            assert entry.name == f"{spec['name']}__{index}"
            assert model_config_pb2.DataType.Name(entry.data_type) == DATA_TYPES[spec["dtype"]]
            shape = spec["shape"][1:] if batched else spec["shape"]
            assert list(entry.dims) == [-1 if isinstance(d, str) else d for d in shape]
            if kind == "input":
                assert not entry.optional


def test_repository_layout_and_config(tiny_bert_pt, tmp_path):
    options = TritonOptions(max_batch_size=16, dynamic_batching=True, instances=2)
    model_dir = write_model_repository(
        tiny_bert_pt, tmp_path / "repo", name="tiny", options=options
    )
    assert model_dir == tmp_path / "repo" / "tiny"
    assert (model_dir / "1" / "model.pt").read_bytes() == tiny_bert_pt.read_bytes()
    config = _parse(model_dir / "config.pbtxt")
    assert config.name == "tiny"
    assert config.platform == "pytorch_libtorch"
    assert config.max_batch_size == 16
    assert config.HasField("dynamic_batching")
    assert len(config.instance_group) == 1
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["INFERENCE_MODE"].string_value == "true"
    manifest = tsrunner.read_manifest(tiny_bert_pt)
    _check_against_manifest(config, manifest, batched=True)
    # Concretely, for the tiny BERT:
    assert [i.name for i in config.input] == [
        "input_ids__0",
        "attention_mask__1",
        "token_type_ids__2",
    ]
    assert [list(o.dims) for o in config.output] == [[-1, 32], [32]]


def test_unbatched_config_keeps_the_batch_dimension(tiny_bert_pt, tmp_path):
    model_dir = write_model_repository(
        tiny_bert_pt, tmp_path, options=TritonOptions(max_batch_size=0)
    )
    assert model_dir.name == tiny_bert_pt.stem
    config = _parse(model_dir / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    _check_against_manifest(config, tsrunner.read_manifest(tiny_bert_pt), batched=False)
    assert list(config.input[0].dims) == [-1, -1]


@pytest.mark.parametrize(
    ("options", "name", "message"),
    [
        (TritonOptions(max_batch_size=0, dynamic_batching=True), "m", "needs max_batch_size > 0"),
        (TritonOptions(instances=0), "m", "instances must be at least 1"),
        (TritonOptions(max_batch_size=-1), "m", "max_batch_size must be 0 or more"),
        (TritonOptions(), "my model/v1", "may use only letters"),
    ],
)
def test_bad_options_are_value_errors(tiny_bert_pt, options, name, message):
    with pytest.raises(ValueError, match=message):
        config_pbtxt(tsrunner.read_manifest(tiny_bert_pt), name, options)


def test_cli_export_writes_the_repository(tiny_bert_dir, tmp_path):
    out = tmp_path / "bert.pt"
    result = subprocess.run(
        [
            sys.executable, "-m", "tsrunner", "export", str(tiny_bert_dir), "-o", str(out),
            "--max-length", "16", "--triton-repo", str(tmp_path / "repo"),
            "--dynamic-batching", "--instances", "3", "--max-batch-size", "4",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = _parse(tmp_path / "repo" / "bert" / "config.pbtxt")
    assert (config.max_batch_size, config.instance_group[0].count) == (4, 3)
    assert (tmp_path / "repo" / "bert" / "1" / "model.pt").read_bytes() == out.read_bytes()


def test_cli_triton_subcommand_and_its_errors(tiny_bert_pt, tmp_path):
    command = [sys.executable, "-m", "tsrunner", "triton", str(tiny_bert_pt), str(tmp_path)]
    ok = subprocess.run([*command, "--triton-name", "enc"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert _parse(tmp_path / "enc" / "config.pbtxt").name == "enc"
    bad = subprocess.run(
        [*command, "--max-batch-size", "0", "--dynamic-batching"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "tsrunner: error: dynamic batching needs max_batch_size > 0"


def test_client_example_builds_a_request_matching_the_config(tiny_bert_pt, tmp_path):
    """The request side of examples/python/triton_client.py, checked without a server."""
    spec = importlib.util.spec_from_file_location("triton_client", EXAMPLES / "triton_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    texts = ["Who was Jim Henson?", "Jim Henson was a puppeteer who created the Muppets"]
    inputs = client.build_inputs(tiny_bert_pt, texts)
    config = _parse(write_model_repository(tiny_bert_pt, tmp_path) / "config.pbtxt")
    assert [i.name() for i in inputs] == [i.name for i in config.input]
    for tensor, entry in zip(inputs, config.input, strict=True):
        assert tensor.datatype() == model_config_pb2.DataType.Name(entry.data_type).removeprefix(
            "TYPE_"
        )
        batch = tensor.shape()[0]
        assert batch == 2 and batch <= config.max_batch_size
        assert len(tensor.shape()) == len(entry.dims) + 1
    arrays = client.encode(tiny_bert_pt, texts)
    # The same arrays through the C++ runner: what Triton's LibTorch backend would compute.
    import torch

    outputs = tsrunner.Runner(tiny_bert_pt).run({k: torch.from_numpy(v) for k, v in arrays.items()})
    assert outputs["last_hidden_state"].shape[:2] == tuple(arrays["input_ids"].shape)
