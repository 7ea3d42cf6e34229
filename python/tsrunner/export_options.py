"""The options of one export, checked (types and values) before any model is loaded."""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import accuracy_gate
from . import quantize as int8

SHAPE_MODES = ("auto", "dynamic", "fixed")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Other spellings of DTYPES' names (as torch and the Hugging Face tools accept them).
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
# Traced and eager run the same kernels, but half precision rounds differently wherever the
# trace fuses or reorders an operation: its tolerance follows the format's precision.
DEFAULT_ATOL = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
DEVICES = ("cpu", "cuda")


class ArgumentTypeError(TypeError, ValueError):
    """An export argument of the wrong type: a TypeError, and a ValueError as all bad input is."""


@dataclass(frozen=True)
class ExportOptions:
    """What `tsrunner.export` was asked for: as given (`ExportOptions(**arguments)`), or checked
    with defaults resolved (`validate_options`)."""

    task: str = "auto"
    max_length: int | None = None
    batch_size: int = 2
    shapes: str = "auto"
    atol: float | None = None  # checked: resolved per dtype (DEFAULT_ATOL)
    untie_weights: bool = False
    buckets: Any = ()  # checked: a tuple of ascending unique lengths, the last is max_length
    revision: str | None = None
    trust_remote_code: bool = False
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None
    accuracy_gate: str | None = None  # int8: a lower gate, "mean_cosine=0.998,..." (Gate.parse)
    backend: str = "jit"
    allow_untrained_head: bool = False
    isa: str = "native"  # aoti: the instruction set compiled for (tsrunner.aoti.ISAS)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def target(self) -> torch.device:
        return torch.device(self.device)

    def replace(self, **changes: Any) -> ExportOptions:
        return dataclasses.replace(self, **changes)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# What each option must be: its type's description and the test for it.
_TYPES: dict[str, tuple[str, Any]] = {
    "integer": ("an integer", _is_integer),
    "number": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "string": ("a string", lambda v: isinstance(v, str)),
    "flag": ("True or False", lambda v: isinstance(v, bool)),
}
_OPTION_TYPES = {
    "task": "string",
    "max_length": "integer?",
    "batch_size": "integer",
    "shapes": "string",
    "atol": "number?",
    "untie_weights": "flag",
    "revision": "string?",
    "trust_remote_code": "flag",
    "device": "string",
    "dtype": "string",
    "quantize": "string?",
    "accuracy_gate": "string?",
    "backend": "string",
    "allow_untrained_head": "flag",
    "isa": "string",
}


def _check_types(given: ExportOptions) -> None:
    for name, kind in _OPTION_TYPES.items():
        value = getattr(given, name)
        if value is None and kind.endswith("?"):
            continue
        description, test = _TYPES[kind.rstrip("?")]
        if not test(value):
            raise ArgumentTypeError(
                f"{name} must be {description}, not {_type_name(value)} {value!r}"
            )
    buckets = given.buckets
    if buckets is None:
        return
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Iterable):
        raise ArgumentTypeError(
            f"buckets must be a list of lengths such as [32, 64, 128], not "
            f"{_type_name(buckets)} {buckets!r}"
        )
    for length in buckets:
        if not _is_integer(length):
            raise ArgumentTypeError(
                f"every bucket must be an integer, not {_type_name(length)} {length!r}"
            )


# What an export writes, by the output's suffix (docs/format.md).
OUTPUT_SUFFIXES = {".pt": "TorchScript", ".pt2": "AOTInductor"}


def check_output_path(output: str | Path) -> Path:
    """The output as a Path, checked before any work: a file name ending in .pt or .pt2 in a
    directory that exists (an export creates no directories, as tsrun --output does not)."""
    if not isinstance(output, (str, Path)):
        raise ArgumentTypeError(f"output must be a path, not {_type_name(output)} {output!r}")
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"output {path} is a directory; give a file name such as model.pt")
    if path.suffix not in OUTPUT_SUFFIXES:
        formats = " or ".join(f"{kind} ({suffix})" for suffix, kind in OUTPUT_SUFFIXES.items())
        raise ValueError(
            f"output {path}: tsrunner writes {formats} archives; name the output "
            f"{path.stem or 'model'}.pt or {path.stem or 'model'}.pt2"
        )
    parent = path.parent
    if not parent.is_dir():
        reason = "is not a directory" if parent.exists() else "does not exist"
        raise ValueError(f"output {path}: directory {parent} {reason}; create it first")
    return path


def _check_device(device: str) -> None:
    if device.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be cpu or cuda[:N], not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device}: this torch ({torch.__version__}) sees no CUDA device; "
            "export on a CUDA machine with a CUDA build of torch, or use --device cpu"
        )


def _warn_about_slow_precision(dtype: str, device: str) -> None:
    """Half precision saves memory, not time, where the device has no fast kernels for it."""
    if device != "cpu" or dtype == "float32":
        return
    fast = (
        torch.ops.mkldnn._is_mkldnn_fp16_supported()
        if dtype == "float16"
        else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    if not fast:
        warnings.warn(
            f"--dtype {dtype} on this CPU has no fast {dtype} kernels: the export runs several "
            "times slower than float32 (half the memory); use float32 on the CPU, or export for "
            "--device cuda",
            UserWarning,
            stacklevel=4,
        )


def validate_options(given: ExportOptions) -> ExportOptions:
    """The options checked, with defaults resolved: an ArgumentTypeError (a TypeError and a
    ValueError) names an argument of the wrong type, a ValueError one with a wrong value, both
    before anything is loaded. Backend-specific rules are the backend's
    (backends.Backend.check_options)."""
    _check_types(given)
    dtype = DTYPE_ALIASES.get(given.dtype, given.dtype)
    shapes, max_length, device, quantize = (
        given.shapes,
        given.max_length,
        given.device,
        given.quantize,
    )
    if shapes not in SHAPE_MODES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPE_MODES)}, not {shapes!r}")
    if given.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {given.batch_size}")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")
    if dtype not in DTYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(DTYPES)} (or {', '.join(DTYPE_ALIASES)}), "
            f"not {dtype!r}"
        )
    atol = DEFAULT_ATOL[dtype] if given.atol is None else float(given.atol)
    if not atol > 0:
        raise ValueError(f"atol must be positive, not {atol}")
    if quantize is not None and quantize not in int8.QUANTIZE_MODES:
        modes = ", ".join(int8.QUANTIZE_MODES)
        raise ValueError(f"quantize must be one of {modes}, not {quantize!r}")
    if quantize and (dtype != "float32" or device != "cpu"):
        raise ValueError("--quantize int8 starts from a float32 model on the CPU")
    if given.accuracy_gate is not None:
        if not quantize:
            raise ValueError("accuracy_gate applies to --quantize int8 exports")
        accuracy_gate.Gate.parse(given.accuracy_gate)  # a ValueError names the bad bar
    if given.isa != "native" and given.backend != "aoti":
        raise ValueError("isa applies to AOTInductor exports (--format aoti) only")
    _check_device(device)
    _warn_about_slow_precision(dtype, device)
    buckets = tuple(sorted(set(given.buckets or ())))
    if buckets:
        if buckets[0] < 1:
            raise ValueError(f"buckets must be positive lengths, not {buckets[0]}")
        if max_length is not None and max_length != buckets[-1]:
            raise ValueError(
                f"max_length {max_length} differs from the largest bucket {buckets[-1]}; "
                "give one of them"
            )
        if shapes == "dynamic":
            raise ValueError(
                "buckets are fixed lengths; they cannot be combined with shapes=dynamic"
            )
        max_length = buckets[-1]
    return given.replace(dtype=dtype, atol=atol, buckets=buckets, max_length=max_length)


# The keyword arguments of tsrunner.export that are options (all but the paths and progress).
OPTION_NAMES = tuple(field.name for field in dataclasses.fields(ExportOptions))
