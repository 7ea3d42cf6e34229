"""`--format aoti`: torch.export + AOTInductor into a `.pt2` package, beside TorchScript.

The named-input wrapper is exported with torch.export (batch and sequence dimensions dynamic),
compiled ahead of time by Inductor with freezing (weights become constants, so Linear layers get
oneDNN's packed GEMMs) and packaged by `torch._inductor.aoti_compile_and_package`. The package is
a zip like a TorchScript archive; tsrunner's records go under `extra/` in it, sealed with the same
digest (tsrunner.integrity). The C++ Runner loads it with
`torch::inductor::AOTIModelPackageLoader`; Python with `torch._inductor.aoti_load_package`.

Inductor compiles for a CPU: by default `-march=native` and the widest vector ISA of the
exporting machine. The manifest records what the code may use (`aoti.cpu_isa`,
`aoti.cpu_flags`) and the torch version; the runner refuses a CPU that lacks any of it or a
different LibTorch. `isa="avx2"` compiles for x86-64-v3 (AVX2 + FMA) instead, for deployment on
any recent x86 server.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .backend_base import ShapeList
from .dummy_inputs import BATCH, CHOICES, DECODER_SEQUENCE, SEQUENCE
from .export_options import ExportOptions

# --isa values: the exporting CPU's own instruction set, or a portable x86-64 baseline.
ISAS = ("native", "avx2")
# AOTIModelPackageLoader's model name: data/aotinductor/<name>/ in the package.
MODEL_NAME = "model"
# ISA extensions GCC may emit under -march=native (the /proc/cpuinfo spelling), x86-64-v3's
# first. A package compiled that way may use any the exporting CPU has; the runner needs them all.
COMPILER_ISA_FLAGS = (
    "sse4_1",
    "sse4_2",
    "popcnt",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi1",
    "bmi2",
    "abm",
    "movbe",
    "adx",
    "aes",
    "pclmulqdq",
    "sha_ni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512ifma",
    "avx512vbmi",
    "avx512_vbmi2",
    "avx512_vnni",
    "avx512_bitalg",
    "avx512_vpopcntdq",
    "avx512_bf16",
    "avx512_fp16",
    "gfni",
    "vaes",
    "vpclmulqdq",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# What -march=x86-64-v3 allows (GCC's definition): the list above starts with exactly that set.
X86_64_V3_FLAGS = COMPILER_ISA_FLAGS[: COMPILER_ISA_FLAGS.index("movbe") + 1]


def cpu_flags() -> set[str]:
    """The ISA flags /proc/cpuinfo lists for this CPU (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def required_cpu_flags(isa: str) -> list[str]:
    """The CPU flags a package compiled with `isa` on this machine may execute."""
    if isa == "avx2":
        return list(X86_64_V3_FLAGS)
    have = cpu_flags()
    return [flag for flag in COMPILER_ISA_FLAGS if flag in have]


def inductor_configs(isa: str) -> dict[str, Any]:
    """Inductor settings of an export: freezing (constant weights, oneDNN packed GEMMs); for a
    baseline ISA the compiler's -march and Inductor's vector width."""
    configs: dict[str, Any] = {"freezing": True}
    if isa == "avx2":
        configs.update({"cpp.march": "x86-64-v3", "cpp.simdlen": 256})
    return configs


def _dim_for(symbol: str, trace_length: int, dynamic_sequence: bool) -> Any:
    if symbol == BATCH:
        return torch.export.Dim("batch", min=1, max=65536)
    if symbol == CHOICES:
        return torch.export.Dim("choices", min=1, max=1024)
    if symbol in (SEQUENCE, DECODER_SEQUENCE) and dynamic_sequence:
        return torch.export.Dim(symbol, min=1, max=max(trace_length, 2))
    return None


class AotiPackage:
    """An exported and compiled model: the package file and its loaded runner."""

    def __init__(self, path: Path, loaded: Callable[..., Any], metadata: dict[str, str]):
        self.path = path
        self.loaded = loaded
        self.metadata = metadata

    def __call__(self, *inputs: torch.Tensor) -> Any:
        return self.loaded(*inputs)


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Inductor logs to stdout/stderr while compiling; the exporter reports progress itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class AotiBackend:
    """torch.export + AOTInductor into one `.pt2` package."""

    name = "aoti"

    def __init__(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="tsrunner-aoti-"))
        self.isa = "native"
        self.trace_length = 0
        self.dynamic_sequence = True
        self.input_shapes: list[tuple[str | int, ...]] = []

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_workdir", ""), ignore_errors=True)

    def check_options(self, options: ExportOptions) -> ExportOptions:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise ValueError(
                "--format aoti is supported on x86-64 CPUs only in this tsrunner; use --format "
                "torchscript"
            )
        if options.device != "cpu":
            raise ValueError("--format aoti compiles for the CPU (--device cpu) in this tsrunner")
        if options.quantize:
            raise ValueError(
                "--format aoti cannot be combined with --quantize int8 (dynamically quantized "
                "Linear layers do not export); use --format torchscript for int8"
            )
        if options.buckets:
            raise ValueError(
                "--format aoti compiles one graph with a dynamic sequence length: --buckets do "
                "not apply (use --shapes dynamic, or --format torchscript for buckets)"
            )
        if options.isa not in ISAS:
            raise ValueError(f"isa must be one of {', '.join(ISAS)}, not {options.isa!r}")
        if options.isa == "avx2" and "avx2" not in cpu_flags():
            raise ValueError("--isa avx2 needs an exporting CPU with AVX2 (the export runs it)")
        self.isa = options.isa
        self.dynamic_sequence = options.shapes != "fixed"
        return options

    def plan(self, trace_length: int, input_shapes: list[tuple[str | int, ...]]) -> None:
        """The traced length and the manifest's input shapes (symbols), for the Dims."""
        self.trace_length = trace_length
        self.input_shapes = input_shapes

    def trace(
        self, wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]]
    ) -> AotiPackage:
        example = methods["forward"]
        dynamic_shapes = tuple(
            {
                index: dim
                for index, symbol in enumerate(shape)
                if isinstance(symbol, str)
                and (dim := _dim_for(symbol, self.trace_length, self.dynamic_sequence)) is not None
            }
            or None
            for shape in self.input_shapes
        )
        exported = torch.export.export(
            wrapper, example, dynamic_shapes=(dynamic_shapes,), strict=False
        )
        package = self._workdir / "model.pt2"
        with _quiet_compiler():
            torch._inductor.aoti_compile_and_package(
                exported,
                package_path=str(package),
                inductor_configs=inductor_configs(self.isa),
            )
        return self.load(package, torch.device("cpu"))

    def method(self, traced: Any, name: str) -> Callable[..., Any]:
        return traced

    def validation_shapes(self, shapes: ShapeList) -> ShapeList:
        if self.dynamic_sequence:
            return shapes
        return [(shape, padded) for shape, padded in shapes if shape.sequence == self.trace_length]

    def manifest_record(self, traced: AotiPackage) -> dict[str, Any]:
        """The manifest's "aoti" object: what the compiled code needs from the CPU and LibTorch."""
        return {
            "model_name": MODEL_NAME,
            "isa": self.isa,
            "cpu_isa": traced.metadata.get("AOTI_CPU_ISA", "").split(),
            "cpu_flags": required_cpu_flags(self.isa),
            "torch": torch.__version__.split("+")[0],
        }

    def save(self, traced: AotiPackage, path: Path, extra_files: dict[str, str]) -> None:
        """The package with tsrunner's records under its extra/ folder, as TorchScript has them."""
        shutil.copyfile(traced.path, path)
        with zipfile.ZipFile(path, "a") as archive:
            prefix = archive.namelist()[0].split("/", 1)[0] + "/"
            for name, text in extra_files.items():
                archive.writestr(f"{prefix}extra/{name}", text, zipfile.ZIP_STORED)

    def load(self, path: Path, device: torch.device) -> AotiPackage:
        path = Path(path)
        if path.suffix != ".pt2":  # the exporter's temporary file: the loader wants .pt2
            copy = Path(tempfile.mkdtemp(dir=self._workdir)) / "check.pt2"
            shutil.copyfile(path, copy)
            path = copy
        loaded = load_package(path)
        return AotiPackage(path, loaded, dict(loaded.get_metadata()))


def load_package(path: str | os.PathLike[str]) -> Any:
    """torch._inductor.aoti_load_package on a tsrunner `.pt2` (plain PyTorch, no checks)."""
    return torch._inductor.aoti_load_package(str(path))
