"""How an export is compiled, saved and reloaded: one Backend per archive kind.

The exporter drives every backend the same way: check the options, trace the wrapper at each
method's example inputs, validate the shapes the backend can take, save the archive with the
tsrunner records, reload it and compare. TorchScript (`jit`) is the default; `neuron`
(tsrunner.neuron) compiles one static shape with the AWS Neuron SDK. `aoti` (tsrunner.aoti)
writes the other format, an AOTInductor `.pt2` package: its `trace` exports and compiles, `save`
writes the package with the records, `load` opens it for the reload check.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from .export_options import ExportOptions

BACKEND_NAMES = ("jit", "neuron", "aoti")
# Archive formats (--format) and the backends that write them.
FORMATS = {"torchscript": ("jit", "neuron"), "aoti": ("aoti",)}

# (shape, padded) pairs, as validate.validation_shapes gives them.
ShapeList = list[tuple[Any, bool]]


def bucket_method(length: int) -> str:
    """The TorchScript method of a bucketed export that takes `length` tokens."""
    return f"forward_{length}"


class Backend(Protocol):
    """What the exporter needs from an archive kind."""

    name: str  # recorded as the manifest's "backend"

    def check_options(self, options: ExportOptions) -> ExportOptions: ...

    def trace(
        self, wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]]
    ) -> Any: ...

    def method(self, traced: Any, name: str) -> Callable[..., Any]: ...

    def validation_shapes(self, shapes: ShapeList) -> ShapeList: ...

    def save(self, traced: Any, path: Path, extra_files: dict[str, str]) -> None: ...

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]: ...


class TorchScriptBackend:
    """torch.jit.trace into one TorchScript archive (`torch.jit.load` reads it)."""

    name = "jit"

    def check_options(self, options: ExportOptions) -> ExportOptions:
        """The options this backend can honour (possibly adjusted), or a ValueError."""
        return options

    def trace(
        self, wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]]
    ) -> torch.jit.ScriptModule:
        """One module whose methods take each entry of `methods`; "forward" is always there.
        Methods of one module share its parameters, so the weights are stored once."""
        for method in methods:
            # Bucket methods trace forward at another length; a wrapper's own methods (a
            # generation export's prefill and decode) trace themselves.
            if method != "forward" and not hasattr(type(wrapper), method):
                setattr(wrapper, method, wrapper.forward)
        if len(methods) == 1:
            return torch.jit.trace(wrapper, methods["forward"], check_trace=False)
        return torch.jit.trace_module(wrapper, methods, check_trace=False)

    def method(self, traced: Any, name: str) -> Callable[..., Any]:
        return getattr(traced, name)

    def validation_shapes(self, shapes: ShapeList) -> ShapeList:
        """The subset of `shapes` the compiled graph can take."""
        return shapes

    def save(self, traced: Any, path: Path, extra_files: dict[str, str]) -> None:
        with warnings.catch_warnings():
            # torch.jit.save/load warn that TorchScript is deprecated; that is why tsrunner exists.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(traced, str(path), _extra_files=extra_files)

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device)


def get_backend(name: str) -> Backend:
    """The backend called `name`, or a ValueError listing the known ones."""
    if name == "jit":
        return TorchScriptBackend()
    if name == "neuron":
        from .neuron import NeuronBackend

        return NeuronBackend()
    if name == "aoti":
        from .aoti import AotiBackend

        return AotiBackend()
    raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}, not {name!r}")


def resolve_backend(backend: str, archive_format: str | None, output: Any) -> str:
    """The backend an export uses: `format` ("torchscript" or "aoti") when given, else the
    output's suffix (`.pt2` is an AOTInductor package); a ValueError when they contradict."""
    suffix = str(output).rsplit(".", 1)[-1] if isinstance(output, (str, Path)) else ""
    if archive_format is None:
        archive_format = "aoti" if suffix == "pt2" or backend == "aoti" else "torchscript"
    if archive_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {archive_format!r}")
    if archive_format == "aoti":
        if backend not in ("jit", "aoti"):
            raise ValueError(f"--format aoti cannot be combined with --backend {backend}")
        if suffix != "pt2":
            raise ValueError(f"an AOTInductor package is a .pt2 file: name the output {output}.pt2")
        return "aoti"
    if backend == "aoti" or suffix == "pt2":
        raise ValueError(
            "a .pt2 output is an AOTInductor package: use --format aoti (or name the output .pt)"
        )
    return backend
