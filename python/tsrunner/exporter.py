"""`tsrunner.export`: trace a Transformers model to one validated TorchScript archive."""

from __future__ import annotations

import datetime
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from . import model_source
from . import quantize as int8
from ._version import __version__
from .atomic import atomic_path
from .dummy_inputs import DummyInputs, InputSpec, input_specs
from .errors import ExportError
from .integrity import seal
from .manifest import CONFIG_RECORD, MANIFEST_RECORD, SCHEMA_VERSION, TOKENIZER_RECORD
from .tasks import resolve_task
from .validate import ShapeCheck, check_shape, validation_shapes
from .wrapper import NamedInputsWrapper, tensor_output_names

SHAPE_MODES = ("auto", "dynamic", "fixed")
# Longest default trace: positions beyond this are rarely used and cost memory at validation.
DEFAULT_MAX_LENGTH_CAP = 512


@dataclass
class ExportReport:
    """What an export produced and how it was validated."""

    output: Path
    manifest: dict[str, Any]
    checks: list[ShapeCheck]
    tracer_warnings: list[str] = field(default_factory=list)
    size_bytes: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.manifest["validation"]["passed"])

    def summary(self) -> str:
        """A validation table in the spirit of Optimum's export report."""
        atol = self.manifest["validation"]["atol"]
        names = [output["name"] for output in self.manifest["outputs"]]
        lines = [f"Validating the trace against the eager model (atol {atol:g}):"]
        for check in self.checks:
            shape = f"batch {check.batch:>2}, sequence {check.sequence:>4}"
            shape += " (padded)" if check.padded else "         "
            diffs = ", ".join(f"{name} {check.max_abs_diff[name]:.2e}" for name in names)
            lines.append(f"  [{'ok' if check.passed else 'FAIL'}] {shape}  max|diff|: {diffs}")
        contract = self.manifest["shape_contract"]
        lines.append(
            f"Shape contract: {contract['kind']}, sequence "
            f"{contract['min_sequence']}..{contract['max_sequence']}"
        )
        if self.tracer_warnings:
            lines.append(
                f"Tracer warnings ({len(self.tracer_warnings)}; the shapes above were validated "
                "despite them; full text in the manifest):"
            )
            lines.extend(f"  {message[:96]}..." for message in self.tracer_warnings)
        quantization = self.manifest.get("quantization")
        if quantization:
            accuracy = quantization["accuracy"]
            lines.append(
                f"int8 vs float32 on {accuracy['sentences']} real sentences: {accuracy['output']} "
                f"cosine mean {accuracy['mean_cosine']:.4f}, min {accuracy['min_cosine']:.4f}"
            )
        lines.append(
            f"Wrote {self.output} ({self.size_bytes / 1e6:.1f} MB) in {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def _default_max_length(source: model_source.ModelSource) -> int:
    candidates = [DEFAULT_MAX_LENGTH_CAP]
    positions = getattr(source.config, "max_position_embeddings", None)
    if positions:
        candidates.append(int(positions))
    sbert_config = source.directory / "sentence_bert_config.json"
    if sbert_config.is_file():
        seq_length = json.loads(sbert_config.read_text()).get("max_seq_length")
        if seq_length:
            candidates.append(int(seq_length))
    return min(candidates)


def _pad_token_id(source: model_source.ModelSource) -> int:
    if source.tokenizer_json is not None:
        padding = json.loads(source.tokenizer_json).get("padding") or {}
        if isinstance(padding.get("pad_id"), int):
            return int(padding["pad_id"])
    pad = getattr(source.config, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _tied_parameter_groups(model: torch.nn.Module) -> list[list[str]]:
    """Parameter names that share one tensor (e.g. word embeddings and an LM-head decoder)."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _trace(wrapper: torch.nn.Module, inputs: tuple[torch.Tensor, ...]):
    """Traces `wrapper`; returns the traced module and the TracerWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught, model_source.quiet_transformers():
        warnings.simplefilter("always")
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, inputs, check_trace=False)
    messages: list[str] = []
    for warning in caught:
        if issubclass(warning.category, torch.jit.TracerWarning):
            text = " ".join(str(warning.message).split())[:300]
            location = f"{Path(warning.filename).name}:{warning.lineno}"
            entry = f"{location}: {text}"
            if entry not in messages:
                messages.append(entry)
    return traced, messages


def _io_spec(spec: InputSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "dtype": "int64", "shape": ["batch", "sequence"]}
    if spec.default:
        entry["default"] = spec.default
    if spec.value_range:
        entry["range"] = list(spec.value_range)
    return entry


def _output_spec(name: str, example: torch.Tensor, batch: int, sequence: int) -> dict[str, Any]:
    shape: list[Any] = []
    for index, size in enumerate(example.shape):
        if index == 0 and size == batch:
            shape.append("batch")
        elif index == 1 and size == sequence:
            shape.append("sequence")
        else:
            shape.append(int(size))
    dtype = str(example.dtype).removeprefix("torch.")
    return {"name": name, "dtype": dtype, "shape": shape}


def export(
    model: str | Path,
    output: str | Path,
    *,
    task: str = "auto",
    max_length: int | None = None,
    batch_size: int = 2,
    shapes: str = "auto",
    atol: float = 1e-4,
    quantize: str | None = None,
) -> ExportReport:
    """Trace `model` (a local Transformers model directory) to the TorchScript archive `output`.

    The trace is validated against the eager model at several shapes before anything is written;
    an export that fails validation raises ExportError and leaves no file behind.

    `quantize="int8"` quantizes Linear layers to int8 (tsrunner.quantize) and also checks
    accuracy against the float32 model on real text.
    """
    started = time.perf_counter()
    if shapes not in SHAPE_MODES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPE_MODES)}, not {shapes!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")
    if not atol > 0:
        raise ValueError(f"atol must be positive, not {atol}")
    if quantize is not None and quantize not in int8.QUANTIZE_MODES:
        modes = ", ".join(int8.QUANTIZE_MODES)
        raise ValueError(f"quantize must be one of {modes}, not {quantize!r}")
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a directory; give a file name such as model.pt")

    resolved = resolve_task(task)
    source = model_source.load(model, resolved)
    positions = getattr(source.config, "max_position_embeddings", None)
    if max_length is not None and positions and max_length > positions:
        raise ValueError(
            f"max_length {max_length} exceeds the model's {positions} position embeddings"
        )
    trace_length = max_length or _default_max_length(source)

    vocab_size = int(source.model.get_input_embeddings().num_embeddings)
    specs = input_specs(source.model, vocab_size)
    pad_token_id = _pad_token_id(source)
    dummies = DummyInputs(specs, source.tokenizer_json, pad_token_id, vocab_size)
    traced_inputs = dummies.make(batch_size, trace_length, padded=batch_size > 1)
    input_names = [spec.name for spec in specs]
    output_names = tensor_output_names(source.model, traced_inputs)
    float_wrapper = NamedInputsWrapper(source.model, input_names, output_names).eval()
    wrapper = float_wrapper
    if quantize:
        accuracy_batches = int8.text_batches(
            specs,
            source.tokenizer_json,
            pad_token_id,
            trace_length,
            lambda batch: dummies.make(batch, min(trace_length, 32), padded=True),
        )
        quantized, float_layers, _ = int8.choose_quantized_model(
            source.model,
            lambda model: NamedInputsWrapper(model, input_names, output_names).eval(),
            accuracy_batches,
            output_names,
        )
        wrapper = NamedInputsWrapper(quantized, input_names, output_names).eval()
    example = tuple(traced_inputs.values())

    try:
        traced, tracer_warnings = _trace(wrapper, example)
    except Exception as error:
        raise ExportError(
            f"{type(source.model).__name__} could not be traced: {error}".splitlines()[0]
        ) from error

    checks: list[ShapeCheck] = []
    for batch, sequence, padded in validation_shapes(batch_size, trace_length):
        inputs = tuple(dummies.make(batch, sequence, padded=padded).values())
        checks.append(check_shape(wrapper, traced, inputs, output_names, atol, padded=padded))

    traced_check = checks[0]
    if not traced_check.passed:
        raise ExportError(
            f"the trace disagrees with the eager model at the traced shape itself "
            f"(max|diff| {max(traced_check.max_abs_diff.values()):.3g} > atol {atol:g}); "
            "nothing was written"
        )
    all_passed = all(check.passed for check in checks)
    if shapes == "dynamic" and not all_passed:
        failed = [f"{c.batch}x{c.sequence}" for c in checks if not c.passed]
        raise ExportError(
            f"the trace does not generalise to shapes {', '.join(failed)} within atol {atol:g}; "
            "export with --shapes fixed (the runner then takes exactly the traced length)"
        )
    dynamic = all_passed and shapes != "fixed"
    validated_lengths = [c.sequence for c in checks if c.passed]
    accuracy = None
    if quantize:
        # The atol checks above prove the trace of the int8 model; this proves the int8 model.
        accuracy = int8.check_accuracy(float_wrapper, traced, accuracy_batches, output_names)
        if not accuracy.passed:
            raise ExportError(
                f"int8 accuracy on real text is too low: {accuracy.output} cosine vs float32 "
                f"mean {accuracy.mean_cosine:.4f} (needs {accuracy.min_mean_cosine}), "
                f"min {accuracy.min_cosine:.4f} (needs {accuracy.min_min_cosine}); "
                "nothing was written"
            )
    with torch.inference_mode():
        example_outputs = wrapper(*example)

    manifest: dict[str, Any] = {
        "format": "tsrunner",
        "schema_version": SCHEMA_VERSION,
        "task": resolved.name,
        "model": {
            "type": source.config.model_type,
            "class": type(source.model).__name__,
            "source": source.directory.resolve().name,
            "attn_implementation": getattr(source.config, "_attn_implementation", None) or "",
        },
        "inputs": [_io_spec(spec) for spec in specs],
        "outputs": [
            _output_spec(name, value, batch_size, trace_length)
            for name, value in zip(output_names, example_outputs, strict=True)
        ],
        "shape_contract": {
            "kind": "dynamic" if dynamic else "fixed",
            "min_batch": 1,
            "min_sequence": min(validated_lengths) if dynamic else trace_length,
            "max_sequence": trace_length,
            "validated_batch": [min(c.batch for c in checks), max(c.batch for c in checks)],
            "traced": {"batch": batch_size, "sequence": trace_length},
        },
        "max_length": trace_length,
        "vocab_size": vocab_size,
        "type_vocab_size": getattr(source.config, "type_vocab_size", None),
        "pad_token_id": pad_token_id,
        "tokenizer": TOKENIZER_RECORD if source.tokenizer_json is not None else None,
        "config": CONFIG_RECORD,
        "pooling": source.pooling,
        "tied_weights": [
            {"parameters": names, "untied": False} for names in _tied_parameter_groups(source.model)
        ],
        "validation": {
            "atol": atol,
            "passed": True,
            "checks": [check.to_json() for check in checks],
            "tracer_warnings": tracer_warnings,
        },
        **(
            {"quantization": {**int8.describe_method(float_layers), "accuracy": accuracy.to_json()}}
            if accuracy
            else {}
        ),
        "versions": {
            "tsrunner": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    extra_files = {
        MANIFEST_RECORD: json.dumps(manifest, indent=2),
        CONFIG_RECORD: source.config.to_json_string(),
    }
    if source.tokenizer_json is not None:
        extra_files[TOKENIZER_RECORD] = source.tokenizer_json

    with atomic_path(output) as temporary, warnings.catch_warnings():
        # torch.jit.save/load warn that TorchScript is deprecated; that is why tsrunner exists.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(temporary), _extra_files=extra_files)
        seal(temporary)
        _check_saved_archive(temporary, example, traced)
        size = temporary.stat().st_size

    return ExportReport(
        output=output,
        manifest=manifest,
        checks=checks,
        tracer_warnings=tracer_warnings,
        size_bytes=size,
        seconds=time.perf_counter() - started,
    )


def _check_saved_archive(path: Path, example: tuple[torch.Tensor, ...], traced) -> None:
    """The written file must pass the C++ runner's checks (digest included), load, and reproduce
    the in-memory trace bit for bit."""
    from . import _core

    try:
        _core.verify_archive(path)
    except RuntimeError as error:
        raise ExportError(f"the saved archive fails the runner's checks: {error}") from error
    loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        want = traced(*example)
        got = loaded(*example)
    if not all(torch.equal(a, b) for a, b in zip(want, got, strict=True)):
        raise ExportError("the saved archive does not reproduce the trace; nothing was written")
