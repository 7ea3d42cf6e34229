"""tsrunner: export Transformers models to validated TorchScript and run them from C++."""

from __future__ import annotations

# torch first: the extension links the wheel's libtorch and libtorch_python.
import torch

from ._version import __version__
from .errors import Error, ExportError, InvalidInput, LoadError
from .manifest import read_archive_file, read_manifest

try:
    from ._core import Encoding, Tokenizer, auto_kernel_path, cpu_model, verify_archive
    from ._core import torch_version as _built_torch_version
except ImportError as error:  # pragma: no cover - only without a built extension
    raise ImportError(
        f"tsrunner's C++ extension could not be imported ({error}); "
        "reinstall with `pip install --no-build-isolation .` after installing torch==2.13.0"
    ) from error

if torch.__version__.split("+")[0] != _built_torch_version:
    raise ImportError(
        f"tsrunner was built against torch {_built_torch_version} but torch {torch.__version__} "
        "is installed; reinstall tsrunner against this torch"
    )

from .adopt import adopt
from .exporter import ExportReport, export
from .runner import Runner, RunnerOptions


def auto_engine() -> str:
    """Deprecated: auto_kernel_path() under its first name ("engine" now names the executor,
    TorchScript or AOTInductor)."""
    import warnings

    warnings.warn(
        "tsrunner.auto_engine() is deprecated; use tsrunner.auto_kernel_path()",
        DeprecationWarning,
        stacklevel=2,
    )
    return auto_kernel_path()


__all__ = [
    "Encoding",
    "Error",
    "ExportError",
    "ExportReport",
    "InvalidInput",
    "LoadError",
    "Runner",
    "RunnerOptions",
    "Tokenizer",
    "__version__",
    "adopt",
    "auto_engine",
    "auto_kernel_path",
    "cpu_model",
    "export",
    "read_archive_file",
    "read_manifest",
    "verify_archive",
]
