"""`tsrunner adopt`: a TorchScript trace made elsewhere (the original "Export to TorchScript"
recipe's `traced_bert.pt`) turned into a full tsrunner archive: manifest, tokenizer, config and
content digest, after the trace is checked against the eager model at several shapes exactly as
`tsrunner export` checks its own traces. A trace that does not match is refused; nothing is
written then."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import exporter
from .errors import ExportError
from .export_options import check_output_path
from .manifest import read_manifest


class _CallByName(torch.nn.Module):
    """The adopted trace with the export's input order: calls it by its forward's argument names,
    so an input reaches the argument of its name whatever the trace's positional order."""

    def __init__(self, trace: torch.jit.ScriptModule, input_names: list[str]):
        super().__init__()
        self.trace = trace
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.trace(**dict(zip(self.input_names, inputs, strict=True)))
        return outputs if isinstance(outputs, tuple) else (outputs,)


class _Adopted:
    """An existing trace handed to the exporter in place of a new one."""

    def __init__(self, path: Path, trace: torch.jit.ScriptModule, input_names: list[str]):
        self.path = path
        self.trace = trace
        self.input_names = input_names

    def wrapper(self, plan: Any) -> torch.nn.Module:
        names = [spec.name for spec in plan.specs]
        wrapper = _CallByName(self.trace, names).eval()
        with torch.inference_mode():
            outputs = wrapper(*plan.example)
        if len(outputs) != len(plan.output_names):
            raise ExportError(
                f"the trace returns {len(outputs)} tensor(s) where the model returns "
                f"{len(plan.output_names)} ({', '.join(plan.output_names)}); check --task"
            )
        return wrapper


def adopt(
    trace: str | os.PathLike[str],
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    task: str = "auto",
    max_length: int | None = None,
    batch_size: int = 2,
    shapes: str = "auto",
    atol: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> exporter.ExportReport:
    """Wraps `trace` (a TorchScript module without a tsrunner manifest, e.g. made with
    `torch.jit.trace(model, [tokens_tensor, segments_tensors])`) into the archive `output`, with
    `model` (the Transformers model directory it was traced from) providing the manifest, the
    tokenizer and the eager reference. The archive's inputs are the trace's forward arguments
    (by name); it is validated at the shapes `tsrunner export` uses and refused with ExportError
    when it differs from the eager model beyond `atol`. `trace` runs as TorchScript (load only
    files you trust)."""
    output = check_output_path(output)
    if output.suffix != ".pt":
        raise ValueError(f"output {output}: an adopted trace is TorchScript: name it .pt")
    trace = Path(trace)
    described = read_manifest(trace)
    if not described.get("plain_module"):
        raise ValueError(
            f"{trace} is already a tsrunner archive (task {described.get('task')}); "
            "there is nothing to adopt"
        )
    input_names = [spec["name"] for spec in described["inputs"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's own notice
        module = torch.jit.load(str(trace), map_location="cpu").eval()
    token = exporter.ADOPTED_TRACE.set(_Adopted(trace, module, input_names))
    try:
        return exporter.export(
            model,
            output,
            task=task,
            max_length=max_length,
            batch_size=batch_size,
            shapes=shapes,
            atol=atol,
            progress=progress,
        )
    except ExportError as error:
        raise ExportError(f"{trace} does not match {model}: {error}") from error
    finally:
        exporter.ADOPTED_TRACE.reset(token)
