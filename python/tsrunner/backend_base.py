"""What every backend shares: the Backend protocol the exporter drives, and TorchScript
(`jit`), the default backend the others build on. tsrunner.backends picks one by name; the
backends import this module, never tsrunner.backends, so there is no import circle."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from .export_options import ExportOptions

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
