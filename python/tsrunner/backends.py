"""How an export is compiled, saved and reloaded: one Backend per archive kind.

The exporter drives every backend the same way: check the options, trace the wrapper at each
method's example inputs, validate the shapes the backend can take, save the archive with the
tsrunner records, reload it and compare. TorchScript (`jit`) is the default; `neuron`
(tsrunner.neuron) compiles one static shape with the AWS Neuron SDK. `aoti` (tsrunner.aoti)
writes the other format, an AOTInductor `.pt2` package: its `trace` exports and compiles, `save`
writes the package with the records, `load` opens it for the reload check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .aoti import AotiBackend
from .backend_base import Backend, ShapeList, TorchScriptBackend, bucket_method
from .neuron import NeuronBackend

__all__ = [
    "BACKEND_NAMES",
    "FORMATS",
    "Backend",
    "ShapeList",
    "TorchScriptBackend",
    "bucket_method",
    "get_backend",
    "resolve_backend",
]

BACKEND_NAMES = ("jit", "neuron", "aoti")
# Archive formats (--format) and the backends that write them.
FORMATS = {"torchscript": ("jit", "neuron"), "aoti": ("aoti",)}


def get_backend(name: str) -> Backend:
    """The backend called `name`, or a ValueError listing the known ones."""
    if name == "jit":
        return TorchScriptBackend()
    if name == "neuron":
        return NeuronBackend()
    if name == "aoti":
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
