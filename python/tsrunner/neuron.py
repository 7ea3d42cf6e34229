"""`--backend neuron`: trace with the AWS Neuron SDK (Inferentia/Trainium) instead of torch.jit.

Neuron compiles a graph for one input shape, so a Neuron export is always `fixed` at its traced
length (no buckets, no dynamic contract) and is validated at the traced shape only. The archive
loads where the Neuron runtime is installed (torch-neuronx registers its ops), not on plain
LibTorch. Untested on real Neuron hardware: the test suite drives this module with a stand-in
`torch_neuronx` whose trace is torch.jit.trace.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from .backend_base import ShapeList, TorchScriptBackend
from .export_options import ExportOptions

# Inf2/Trn1 first (torch-neuronx), then Inf1 (torch-neuron).
SDK_MODULES = ("torch_neuronx", "torch_neuron")


class NeuronSDKMissing(ValueError):
    """--backend neuron on a machine without the AWS Neuron SDK."""


def sdk() -> ModuleType:
    """The importable Neuron tracing module, or NeuronSDKMissing saying what to install."""
    for name in SDK_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise NeuronSDKMissing(
        "--backend neuron needs the AWS Neuron SDK, which is not installed: on an Inf2/Trn1 "
        "instance run `pip install torch-neuronx --extra-index-url "
        "https://pip.repos.neuron.amazonaws.com` (Inf1: torch-neuron), or use --backend jit"
    )


def trace(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """Compiles `module` for exactly the shapes of `example` with the Neuron SDK."""
    return sdk().trace(module, example)


class NeuronBackend(TorchScriptBackend):
    """A TorchScript archive whose graph the Neuron SDK compiled for one static shape."""

    name = "neuron"

    def check_options(self, options: ExportOptions) -> ExportOptions:
        sdk()  # fails fast, before the model is loaded, when the SDK is missing
        if options.shapes == "dynamic" or options.buckets:
            raise ValueError(
                "--backend neuron compiles one static shape: it cannot be combined with "
                "--shapes dynamic or --buckets (export one model per length instead)"
            )
        if options.device != "cpu" or options.quantize:
            raise ValueError(
                "--backend neuron traces on the CPU (--device cpu) without --quantize; "
                "the Neuron compiler chooses the device precision itself"
            )
        return options.replace(shapes="fixed")

    def trace(
        self, wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]]
    ) -> torch.jit.ScriptModule:
        return trace(wrapper, methods["forward"])

    def validation_shapes(self, shapes: ShapeList) -> ShapeList:
        return shapes[:1]  # a Neuron graph takes its traced shape only
