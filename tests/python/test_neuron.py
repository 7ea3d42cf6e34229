"""--backend neuron without Neuron hardware: the missing-SDK error, and the whole export path
driven by a stand-in torch_neuronx whose trace is torch.jit.trace (proves the wiring and that
the export is fixed at its traced shape; says nothing about the Neuron compiler itself)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import jsonschema
import pytest
import torch

import tsrunner
from tsrunner import cli, neuron
from tsrunner import manifest as manifest_module


@pytest.fixture
def no_neuron_sdk(monkeypatch):
    for name in neuron.SDK_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError


def _fake_sdk(monkeypatch, name: str) -> list[tuple[torch.Size, ...]]:
    """Installs a stand-in Neuron module `name`; returns the input shapes each trace saw."""
    traced_shapes: list[tuple[torch.Size, ...]] = []

    def trace(module, example):
        traced_shapes.append(tuple(tensor.shape for tensor in example))
        return torch.jit.trace(module, example, check_trace=False)

    fake = types.ModuleType(name)
    fake.trace = trace
    monkeypatch.setitem(sys.modules, name, fake)
    return traced_shapes


def test_missing_sdk_is_one_line_saying_what_to_install(
    no_neuron_sdk, tiny_bert_dir, tmp_path, capsys
):
    output = tmp_path / "neuron.pt"
    code = cli.main(["export", str(tiny_bert_dir), "-o", str(output), "--backend", "neuron"])
    assert code == cli.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tsrunner: error: --backend neuron needs the AWS Neuron SDK")
    assert "pip install torch-neuronx" in lines[0] and "pip.repos.neuron.amazonaws.com" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_neuron_export_is_fixed_at_the_traced_shape(monkeypatch, tiny_bert_dir, tmp_path):
    traced_shapes = _fake_sdk(monkeypatch, "torch_neuronx")
    output = tmp_path / "neuron.pt"
    report = tsrunner.export(tiny_bert_dir, output, backend="neuron", max_length=16)
    assert traced_shapes == [(torch.Size([2, 16]),) * 3]  # one compile, at the traced shape
    manifest = tsrunner.read_manifest(output)
    jsonschema.validate(manifest, manifest_module.schema())
    assert manifest["backend"] == "neuron"
    contract = manifest["shape_contract"]
    assert (contract["kind"], contract["min_sequence"], contract["max_sequence"]) == (
        "fixed",
        16,
        16,
    )
    assert "buckets" not in contract
    checks = manifest["validation"]["checks"]
    assert [(c["batch"], c["sequence"]) for c in checks] == [(2, 16)] and report.passed

    # The archive behaves like any fixed export in the runner (with the stand-in SDK).
    runner = tsrunner.Runner(output)
    got = runner.run({"input_ids": torch.tensor([[101, 7592, 102]])})
    assert got["last_hidden_state"].shape == (1, 3, 32)
    with pytest.raises(tsrunner.InvalidInput, match="traced for 16: re-export with --max-length"):
        runner.run({"input_ids": torch.full((1, 17), 1000)})


def test_inf1_sdk_is_used_when_torch_neuronx_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)
    _fake_sdk(monkeypatch, "torch_neuron")
    assert neuron.sdk().__name__ == "torch_neuron"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shapes": "dynamic"}, "compiles one static shape"),
        ({"buckets": [8, 16]}, "compiles one static shape"),
        ({"quantize": "int8"}, "traces on the CPU"),
        ({"backend": "tpu"}, "backend must be one of jit, neuron"),
    ],
)
def test_neuron_refuses_what_it_cannot_compile(
    monkeypatch, tiny_bert_dir, tmp_path, kwargs, message
):
    _fake_sdk(monkeypatch, "torch_neuronx")
    kwargs = {"backend": "neuron", **kwargs}
    with pytest.raises(ValueError, match=message):
        tsrunner.export(tiny_bert_dir, tmp_path / "x.pt", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_tsrun_names_neuron_when_the_neuron_ops_are_missing(monkeypatch, tiny_bert_dir, tmp_path):
    """A real Neuron archive calls ops only the Neuron runtime registers. Stand-in: a trace
    through a custom op registered in this process only, so a fresh tsrun cannot resolve it."""
    library = torch.library.Library("tsr_fake_neuron", "DEF")  # kept alive for the test
    library.define("run(Tensor a, Tensor b, Tensor c) -> Tensor[]")
    compiled = {}

    def run(a, b, c):
        return list(compiled["module"](a, b, c))

    library.impl("run", run, "CPU")

    class NeuronGraph(torch.nn.Module):
        def forward(self, a, b, c):
            return tuple(torch.ops.tsr_fake_neuron.run(a, b, c))

    def trace(module, example):
        compiled["module"] = module
        return torch.jit.trace(NeuronGraph(), example, check_trace=False)

    fake = types.ModuleType("torch_neuronx")
    fake.trace = trace
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    output = tmp_path / "neuron.pt"
    tsrunner.export(tiny_bert_dir, output, backend="neuron", max_length=16)
    tsrun = Path(sys.executable).parent / "tsrun"
    result = subprocess.run(
        [tsrun, output, "--ids", "101,102", "--raw"], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "compiled for AWS Neuron" in lines[0] and "torch-neuronx" in lines[0]
    assert "tsr_fake_neuron::run" in lines[0]  # LibTorch's own reason, kept
    info = subprocess.run([tsrun, "info", output], capture_output=True, text=True)
    assert info.returncode == 0 and "backend     neuron" in info.stdout
