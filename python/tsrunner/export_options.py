"""The options of one export, checked (types and values) before any model is loaded."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import quantize as int8

SHAPE_MODES = ("auto", "dynamic", "fixed")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Traced and eager run the same kernels, but half precision rounds differently wherever the
# trace fuses or reorders an operation: its tolerance follows the format's precision.
DEFAULT_ATOL = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
DEVICES = ("cpu", "cuda")


class ArgumentTypeError(TypeError, ValueError):
    """An export argument of the wrong type: a TypeError, and a ValueError as all bad input is."""


@dataclass(frozen=True)
class ExportOptions:
    """What `tsrunner.export` was asked for, with defaults resolved and every value checked."""

    task: str = "auto"
    max_length: int | None = None
    batch_size: int = 2
    shapes: str = "auto"
    atol: float = DEFAULT_ATOL["float32"]
    untie_weights: bool = False
    buckets: tuple[int, ...] = ()  # ascending, unique; the last one is max_length
    revision: str | None = None
    trust_remote_code: bool = False
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None
    backend: str = "jit"

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


def _integer(name: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer, not {_type_name(value)} {value!r}")
    return int(value)


def _string(name: str, value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a string, not {_type_name(value)} {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, not {_type_name(value)} {value!r}")
    return value


def _bucket_lengths(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(
            f"buckets must be a list of lengths such as [32, 64, 128], not "
            f"{_type_name(value)} {value!r}"
        )
    lengths = [_integer("every bucket", item) for item in value]
    return tuple(sorted(set(lengths)))


def check_output_path(output: str | Path) -> Path:
    if not isinstance(output, (str, Path)):
        raise ArgumentTypeError(f"output must be a path, not {_type_name(output)} {output!r}")
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"output {path} is a directory; give a file name such as model.pt")
    return path


def _check_device(device: str) -> None:
    if device.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be cpu or cuda[:N], not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device}: this torch ({torch.__version__}) sees no CUDA device; "
            "export on a CUDA machine with a CUDA build of torch, or use --device cpu"
        )


def validate_options(
    *,
    task: str = "auto",
    max_length: int | None = None,
    batch_size: int = 2,
    shapes: str = "auto",
    atol: float | None = None,
    untie_weights: bool = False,
    buckets: Iterable[int] | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    quantize: str | None = None,
    backend: str = "jit",
) -> ExportOptions:
    """The checked options: an ArgumentTypeError (a TypeError and a ValueError) names an
    argument of the wrong type, a ValueError one with a wrong value, both before anything is
    loaded. Backend-specific rules are the backend's
    (backends.Backend.check_options)."""
    task = _string("task", task)
    max_length = _integer("max_length", max_length, optional=True)
    batch_size = _integer("batch_size", batch_size)
    shapes = _string("shapes", shapes)
    if atol is not None and (isinstance(atol, bool) or not isinstance(atol, numbers.Real)):
        raise ArgumentTypeError(f"atol must be a number, not {_type_name(atol)} {atol!r}")
    untie_weights = _flag("untie_weights", untie_weights)
    bucket_lengths = _bucket_lengths(buckets)
    revision = _string("revision", revision, optional=True)
    trust_remote_code = _flag("trust_remote_code", trust_remote_code)
    device = _string("device", device)
    dtype = _string("dtype", dtype)
    quantize = _string("quantize", quantize, optional=True)
    backend = _string("backend", backend)

    if shapes not in SHAPE_MODES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPE_MODES)}, not {shapes!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    atol = DEFAULT_ATOL[dtype] if atol is None else float(atol)
    if not atol > 0:
        raise ValueError(f"atol must be positive, not {atol}")
    if quantize is not None and quantize not in int8.QUANTIZE_MODES:
        modes = ", ".join(int8.QUANTIZE_MODES)
        raise ValueError(f"quantize must be one of {modes}, not {quantize!r}")
    if quantize and (dtype != "float32" or device != "cpu"):
        raise ValueError("--quantize int8 starts from a float32 model on the CPU")
    _check_device(device)
    if bucket_lengths:
        if bucket_lengths[0] < 1:
            raise ValueError(f"buckets must be positive lengths, not {bucket_lengths[0]}")
        if max_length is not None and max_length != bucket_lengths[-1]:
            raise ValueError(
                f"max_length {max_length} differs from the largest bucket {bucket_lengths[-1]}; "
                "give one of them"
            )
        if shapes == "dynamic":
            raise ValueError(
                "buckets are fixed lengths; they cannot be combined with shapes=dynamic"
            )
        max_length = bucket_lengths[-1]
    return ExportOptions(
        task=task,
        max_length=max_length,
        batch_size=batch_size,
        shapes=shapes,
        atol=atol,
        untie_weights=untie_weights,
        buckets=bucket_lengths,
        revision=revision,
        trust_remote_code=trust_remote_code,
        device=device,
        dtype=dtype,
        quantize=quantize,
        backend=backend,
    )
