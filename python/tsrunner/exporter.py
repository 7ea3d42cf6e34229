"""`tsrunner.export`: trace a Transformers model to one validated TorchScript archive."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import (
    accuracy_gate,
    cross_encoder,
    generation_export,
    model_source,
    sentence_embedding,
    seq2seq_export,
)
from . import quantize as int8
from .atomic import atomic_path
from .backends import Backend, bucket_method, get_backend, resolve_backend
from .dummy_inputs import SEQUENCE, DummyInputs, InputSpec, Shape, input_specs
from .errors import ExportError
from .export_options import (
    DEFAULT_ATOL,
    DTYPES,
    OPTION_NAMES,
    SHAPE_MODES,
    ExportOptions,
    check_output_path,
    validate_options,
)
from .integrity import seal
from .manifest import (
    CONFIG_RECORD,
    MANIFEST_RECORD,
    TOKENIZER_RECORD,
    ManifestFacts,
    build_manifest,
    shape_contract,
)
from .tasks import Task, resolve_task
from .validate import (
    ShapeCheck,
    check_shape,
    compare,
    decoder_length,
    validation_shapes,
)
from .wrapper import NamedInputsWrapper, tensor_output_names

__all__ = [
    "DEFAULT_ATOL",
    "DTYPES",
    "SHAPE_MODES",
    "ExportReport",
    "bucket_method",
    "export",
    "untie_weights_of",
]


# An existing trace of the model that tsrunner.adopt hands to export() to validate and save in
# place of a new trace (None: trace the model). A context variable, so that export() keeps one
# signature and its warnings point at the caller.
ADOPTED_TRACE: contextvars.ContextVar[Any] = contextvars.ContextVar("adopted_trace", default=None)

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

    def _input_names(self) -> list[str]:
        return [spec["name"] for spec in self.manifest.get("inputs", [])]

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
        if any(check.padded for check in self.checks) and "attention_mask" in self._input_names():
            lines.append(
                "  (padded rows: outputs per token compared where attention_mask is 1; values at"
                " padding mean nothing)"
            )
        contract = self.manifest["shape_contract"]
        image = self.manifest.get("image")
        if image:
            lines.append(
                f"Shape contract: any batch, images {image['height']}x{image['width']} "
                f"({image['channels']} channels)"
            )
        else:
            buckets = contract.get("buckets")
            lines.append(
                f"Shape contract: {contract['kind']}, sequence "
                f"{contract['min_sequence']}..{contract['max_sequence']}"
                + (f", buckets {', '.join(map(str, buckets))}" if buckets else "")
            )
        if self.tracer_warnings:
            lines.append(
                f"Tracer warnings ({len(self.tracer_warnings)}; the shapes above were validated "
                "despite them; full text in the manifest):"
            )
            lines.extend(f"  {message[:96]}..." for message in self.tracer_warnings)
        reranker = self.manifest["validation"].get("cross_encoder")
        if reranker:
            logits, scores = reranker["logits_max_abs_diff"], reranker["scores_max_abs_diff"]
            lines.append(
                f"CrossEncoder.predict on {reranker['pairs']} real text pairs: max|diff| logits "
                f"{logits:.2e}, scores {scores:.2e}"
            )
        quantization = self.manifest.get("quantization")
        if quantization:
            accuracy = quantization["accuracy"]
            lines.append(
                f"int8 vs float32 on {accuracy['sentences']} real sentences ({accuracy['output']}"
                f"): {quantization['gate_summary']}; {len(quantization['float_layers'])} Linear "
                "layers kept float32"
            )
        lines.append(
            f"Wrote {self.output} ({self.size_bytes / 1e6:.1f} MB) in {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def _default_max_length(source: model_source.ModelSource, positions: int | None) -> int:
    """The model's usable maximum: its positions, its tokenizer's model_max_length,
    sentence-transformers' max_seq_length; at most DEFAULT_MAX_LENGTH_CAP."""
    candidates = [DEFAULT_MAX_LENGTH_CAP]
    if positions:
        candidates.append(positions)
    tokenizer_length = model_source.tokenizer_max_length(source.directory)
    if tokenizer_length:
        candidates.append(tokenizer_length)
    if source.embedding is not None and source.embedding.max_seq_length:
        candidates.append(source.embedding.max_seq_length)
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


def _output_specs(
    wrapper: torch.nn.Module,
    dummies: DummyInputs,
    traced_shape: Shape,
    traced_outputs: tuple[torch.Tensor, ...],
    output_names: list[str],
    symbols: list[str],
) -> list[dict[str, Any]]:
    """Output shapes with their symbolic dimensions: the eager model is run again with one
    symbol changed at a time, and the output dimensions that follow it are named after it."""
    named: list[list[str | int]] = [list(map(int, value.shape)) for value in traced_outputs]
    for symbol in symbols:
        size = traced_shape.symbols()[symbol]
        probe_size = size - 1 if symbol == SEQUENCE and size > 1 else size + 1
        if symbol == SEQUENCE and size == 1:
            continue  # a one-token export: the sequence cannot vary
        probe = dataclasses.replace(traced_shape, **{symbol: probe_size})
        with torch.inference_mode():
            outputs = wrapper(*dummies.make(probe, padded=False).values())
        for dims, value in zip(named, outputs, strict=True):
            for index, probe_dim in enumerate(value.shape):
                if isinstance(dims[index], int) and probe_dim != dims[index]:
                    dims[index] = symbol
    return [
        {"name": name, "dtype": str(value.dtype).removeprefix("torch."), "shape": dims}
        for name, value, dims in zip(output_names, traced_outputs, named, strict=True)
    ]


def _mask_token_id(source: model_source.ModelSource) -> int | None:
    if source.tokenizer_json is not None:
        for token in json.loads(source.tokenizer_json).get("added_tokens") or []:
            if token.get("content") in ("[MASK]", "<mask>"):
                return int(token["id"])
    mask = getattr(source.config, "mask_token_id", None)
    return int(mask) if mask is not None else None


def untie_weights_of(model: torch.nn.Module, groups: list[list[str]]) -> None:
    """Gives every parameter but the first of each tied group its own copy of the tensor, as the
    torchscript flag of older Transformers did (some runtimes cannot share a tensor)."""
    for names in groups:
        for name in names[1:]:
            owner_name, _, attribute = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            shared = getattr(owner, attribute)
            setattr(owner, attribute, torch.nn.Parameter(shared.detach().clone()))


def _tracer_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    messages: list[str] = []
    for warning in caught:
        if issubclass(warning.category, torch.jit.TracerWarning):
            text = " ".join(str(warning.message).split())[:300]
            location = f"{Path(warning.filename).name}:{warning.lineno}"
            entry = f"{location}: {text}"
            if entry not in messages:
                messages.append(entry)
    return messages


def _trace(
    backend: Backend, wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]]
) -> tuple[Any, list[str]]:
    """The backend's trace of `wrapper` at each method's example inputs, and the TracerWarnings
    it raised."""
    with warnings.catch_warnings(record=True) as caught, model_source.quiet_transformers():
        warnings.simplefilter("always")
        with torch.no_grad():
            traced = backend.trace(wrapper, methods)
    return traced, _tracer_messages(caught)


@dataclass
class _TracePlan:
    """What gets traced and with which inputs: decided from the loaded model and the options."""

    images: bool
    trace_length: int
    specs: list[InputSpec]
    dummies: DummyInputs
    traced_shape: Shape
    example: tuple[torch.Tensor, ...]
    output_names: list[str]
    float_wrapper: torch.nn.Module  # the eager model as traced, before quantization
    wrapper: torch.nn.Module  # what is traced (the int8 model for quantized exports)
    methods: dict[str, tuple[torch.Tensor, ...]]
    bucket_inputs: dict[int, tuple[Shape, tuple[torch.Tensor, ...]]]
    vocab_size: int | None
    pad_token_id: int
    tied_groups: list[list[str]]
    accuracy_batches: list[dict[str, torch.Tensor]] = field(default_factory=list)  # the gate's
    float_layers: list[str] = field(default_factory=list)
    layer_choices: list[Any] = field(default_factory=list)  # int8.LayerChoice per Linear
    gate_kind: str = "embedding"
    calibration: Any = None  # accuracy_gate.GateResult on the calibration sentences

    @property
    def length_name(self) -> str:
        return "image height" if self.images else "sequence"


def _load(model: str | Path, options: ExportOptions) -> tuple[model_source.ModelSource, Task]:
    directory, config = model_source.load_config(
        model, revision=options.revision, trust_remote_code=options.trust_remote_code
    )
    task = resolve_task(options.task, getattr(config, "architectures", None))
    if options.buckets and (task.decoder or task.choices):
        raise ValueError(
            f"buckets are not supported for {task.name} exports yet; use --shapes fixed or dynamic"
        )
    source = model_source.load(directory, config, task, trust_remote_code=options.trust_remote_code)
    _check_untrained(source, task, options)
    source.model.to(device=options.target, dtype=options.torch_dtype)
    return source, task


def _check_untrained(source: model_source.ModelSource, task: Task, options: ExportOptions) -> None:
    """A head the checkpoint has no weights for answers at random: refused unless asked for. For
    feature-extraction, missing weights are the pooler at most (hidden states are complete)."""
    if not source.untrained:
        return
    names = ", ".join(source.untrained[:4]) + (", ..." if len(source.untrained) > 4 else "")
    model_class = type(source.model).__name__
    if task.name == "feature-extraction" or options.allow_untrained_head:
        warnings.warn(
            f"{model_class}: the checkpoint has no weights for {names}; Transformers initialised "
            "them at random, so the outputs that use them are random",
            UserWarning,
            stacklevel=4,
        )
        return
    raise ValueError(
        f"{model_class}: the checkpoint has no weights for {names} (Transformers initialised them "
        f"at random), so this {task.name} export would give random answers; export a checkpoint "
        "fine-tuned for the task, another --task, or pass --allow-untrained-head to export it "
        "anyway"
    )


def _trace_length(
    source: model_source.ModelSource, options: ExportOptions, images: bool
) -> tuple[int, tuple[int, int, int]]:
    """The traced sequence length (image height for images) and the image size (C, H, W)."""
    if images:
        if source.image is None:
            raise ValueError(
                f"{type(source.model).__name__} takes images but its config has no image_size"
            )
        if options.max_length is not None:
            raise ValueError(
                "max_length applies to text; image exports take the config's "
                f"{source.image['height']}x{source.image['width']} images"
            )
        image_size = (source.image["channels"], source.image["height"], source.image["width"])
        return source.image["height"], image_size
    positions, offset = model_source.usable_positions(source.model, source.config)
    if options.max_length is not None and positions and options.max_length > positions:
        raise ValueError(
            f"max_length {options.max_length} exceeds the model's {positions} position embeddings"
            + (
                f" (max_position_embeddings {positions + offset} less the padding offset {offset})"
                if offset
                else ""
            )
        )
    return options.max_length or _default_max_length(source, positions), (0, 0, 0)


def _plan(
    source: model_source.ModelSource,
    task: Task,
    options: ExportOptions,
    only_inputs: list[str] | None = None,
) -> _TracePlan:
    """`only_inputs`: the inputs an adopted trace takes (tsrunner.adopt); the others get the
    model's defaults, in the eager reference as in the trace."""
    images = getattr(source.model, "main_input_name", "input_ids") == "pixel_values"
    trace_length, image_size = _trace_length(source, options, images)
    tied_groups = _tied_parameter_groups(source.model)
    if options.untie_weights and tied_groups:
        untie_weights_of(source.model, tied_groups)
        warnings.warn(
            "untied weights: the export holds independent copies of "
            + "; ".join(" = ".join(names) for names in tied_groups)
            + ". Fine for inference; training the export would desynchronise them.",
            UserWarning,
            stacklevel=3,
        )
    embeddings = source.model.get_input_embeddings()
    vocab_size = getattr(embeddings, "num_embeddings", None)
    specs = input_specs(
        source.model,
        task,
        vocab_size,
        image_size,
        pixel_dtype=options.dtype,
        type_ids=source.sends_type_ids,
    )
    if only_inputs is not None:
        known = [spec.name for spec in specs]
        unknown = [name for name in only_inputs if name not in known]
        if unknown:
            raise ExportError(
                f"the trace takes {', '.join(unknown)}, which {type(source.model).__name__} "
                f"({task.name}) does not: it takes {', '.join(known)}"
            )
        specs = [spec for spec in specs if spec.name in only_inputs]
    pad_token_id = _pad_token_id(source)
    decoder_start = getattr(source.config, "decoder_start_token_id", None)
    dummies = DummyInputs(
        specs,
        source.tokenizer_json,
        pad_token_id,
        vocab_size,
        pairs=task.pairs,
        decoder_start_token_id=int(decoder_start or 0),
    )
    batch_size = options.batch_size
    traced_shape = Shape(
        batch_size, trace_length, choices=2, decoder_sequence=decoder_length(trace_length)
    )
    traced_inputs = dummies.make(traced_shape, padded=batch_size > 1 and not images)
    dummies.device, dummies.dtype = options.target, options.torch_dtype
    traced_inputs = {name: dummies.place(value) for name, value in traced_inputs.items()}
    input_names = [spec.name for spec in specs]
    try:
        model_outputs = tensor_output_names(source.model, traced_inputs)
    except Exception as error:
        raise ExportError(
            f"{type(source.model).__name__} fails on {batch_size}x{trace_length} inputs: "
            f"{type(error).__name__}: {error}".splitlines()[0]
            + "; check --max-length and --task against the model's config"
        ) from error
    head = None
    if source.embedding is not None:
        head = source.embedding.head.to(device=options.target, dtype=options.torch_dtype)
    float_wrapper = NamedInputsWrapper(source.model, input_names, model_outputs, head).eval()
    output_names = float_wrapper.names
    plan = _TracePlan(
        images=images,
        trace_length=trace_length,
        specs=specs,
        dummies=dummies,
        traced_shape=traced_shape,
        example=tuple(traced_inputs.values()),
        output_names=output_names,
        float_wrapper=float_wrapper,
        wrapper=float_wrapper,
        methods={},
        bucket_inputs={},
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        tied_groups=tied_groups,
    )
    if options.quantize:
        _quantize(plan, source, task, options)
    plan.methods = {"forward": plan.example}
    for length in options.buckets:
        shape = dataclasses.replace(traced_shape, sequence=length)
        inputs = tuple(dummies.make(shape, padded=batch_size > 1).values())
        plan.bucket_inputs[length] = (shape, inputs)
        plan.methods[bucket_method(length)] = inputs
    return plan


def _quantize(
    plan: _TracePlan, source: model_source.ModelSource, task: Task, options: ExportOptions
) -> None:
    """Replaces the plan's wrapper by the int8 model (keeping the layers int8 hurts most in
    float32) and keeps the real-text batches its accuracy is judged on."""
    input_names = [spec.name for spec in plan.specs]
    unsupported = [name for name in input_names if name not in int8.TEXT_INPUTS]
    if unsupported:
        raise ValueError(
            f"--quantize int8 supports text encoders (inputs {', '.join(int8.TEXT_INPUTS)}); "
            f"this {task.name} export also takes {', '.join(unsupported)}"
        )
    trace_length = plan.trace_length

    def batches(sentences: list[str]) -> list[dict[str, torch.Tensor]]:
        return int8.text_batches(
            plan.specs,
            source.tokenizer_json,
            plan.pad_token_id,
            trace_length,
            lambda batch: plan.dummies.make(Shape(batch, min(trace_length, 32)), padded=True),
            sentences,
        )

    plan.accuracy_batches = batches(accuracy_gate.gate_sentences())
    plan.gate_kind = "labels" if task.name == "text-classification" else "embedding"
    float_wrapper = plan.float_wrapper

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        return NamedInputsWrapper(
            model, input_names, float_wrapper.output_names, float_wrapper.head
        ).eval()

    quantized, plan.float_layers, plan.layer_choices, plan.calibration = (
        int8.choose_quantized_model(
            source.model,
            wrap,
            batches(int8.calibration_sentences()),
            plan.gate_kind,
            accuracy_gate.Gate.parse(options.accuracy_gate),
        )
    )
    plan.wrapper = wrap(quantized)


def _attention_mask(
    specs: list[InputSpec], inputs: tuple[torch.Tensor, ...]
) -> torch.Tensor | None:
    """The input the model reads its attention mask from, if it has one."""
    for spec, tensor in zip(specs, inputs, strict=True):
        if spec.role == "attention_mask":
            return tensor
    return None


def _validate(
    backend: Backend,
    traced: Any,
    plan: _TracePlan,
    options: ExportOptions,
    step: Callable[[str], None],
) -> list[ShapeCheck]:
    """Traced vs eager at every shape the backend takes: each bucket at its own length, else
    the traced shape and the validation_shapes around it."""
    shapes_to_check = (
        []
        if options.buckets
        else validation_shapes(options.batch_size, plan.trace_length, images=plan.images)
    )
    shapes_to_check = backend.validation_shapes(shapes_to_check)
    total = len(plan.bucket_inputs) + len(shapes_to_check)
    checks: list[ShapeCheck] = []

    def check(method: Any, inputs: tuple[torch.Tensor, ...], shape: Shape, padded: bool):
        mask = _attention_mask(plan.specs, inputs)
        return check_shape(
            plan.wrapper, method, inputs, plan.output_names, options.atol,
            shape=shape, padded=padded, attention_mask=mask,
        )  # fmt: skip

    for length, (shape, inputs) in reversed(plan.bucket_inputs.items()):
        step(f"validate shape {len(checks) + 1}/{total}: bucket {length}")
        checks.append(check(backend.method(traced, bucket_method(length)), inputs, shape, True))
    for shape, padded in shapes_to_check:
        step(
            f"validate shape {len(checks) + 1}/{total}: batch {shape.batch}, "
            f"{plan.length_name} {shape.sequence}" + (" (padded)" if padded else "")
        )
        inputs = tuple(plan.dummies.make(shape, padded=padded).values())
        checks.append(check(traced, inputs, shape, padded))
    return checks


def _judge(checks: list[ShapeCheck], options: ExportOptions, plan: _TracePlan) -> bool:
    """Whether the export is dynamic; an ExportError when the checks forbid any export."""
    atol = options.atol
    traced_check = (
        next((c for c in checks if not c.passed), checks[0]) if options.buckets else checks[0]
    )
    if not traced_check.passed:
        raise ExportError(
            f"the trace disagrees with the eager model at the traced shape itself "
            f"(max|diff| {max(traced_check.max_abs_diff.values()):.3g} > atol {atol:g}) at "
            f"batch {traced_check.batch}, sequence {traced_check.sequence}; nothing was written. "
            "A small difference is rounding: raise --atol; a large one means this model's forward "
            "cannot be traced faithfully (data-dependent control flow): try another --task or "
            "--batch-size 1"
        )
    all_passed = all(check.passed for check in checks)
    if options.shapes == "dynamic" and not all_passed:
        failed = [f"{c.batch}x{c.sequence}" for c in checks if not c.passed]
        raise ExportError(
            f"the trace does not generalise to shapes {', '.join(failed)} within atol {atol:g}; "
            "export with --shapes fixed (the runner then takes exactly the traced length)"
        )
    return all_passed and options.shapes != "fixed" and not plan.images and not options.buckets


# Where int8 misses the gate, bf16 is the lower precision that keeps the answers: int8 with some
# layers kept in bf16 or float32 passes only with most multiply-adds out of int8, no faster than
# bf16 everywhere (docs/benchmarks.md, "Mixed precision").
BF16_INSTEAD = (
    "For float32's answers at lower precision export without --quantize and run with --compute "
    "bf16 (CPUs with AVX512-BF16 or AMX; all-MiniLM-L6-v2 keeps 99.7% of nearest neighbours at "
    "~1.5x float32's speed, docs/benchmarks.md)"
)


def _check_int8_accuracy(
    plan: _TracePlan, traced: Any, options: ExportOptions, step: Callable[[str], None]
) -> dict[str, Any]:
    """The atol checks prove the trace of the int8 model; the gate proves the int8 model."""
    gate = accuracy_gate.Gate.parse(options.accuracy_gate)
    step(f"accuracy gate: int8 vs float32 on {len(accuracy_gate.gate_sentences())} sentences")
    reference = accuracy_gate.vectors(plan.float_wrapper, plan.accuracy_batches, plan.gate_kind)
    result = accuracy_gate.compare(reference, traced, plan.accuracy_batches, plan.gate_kind, gate)
    if not result.passed:
        raise ExportError(
            f"int8 accuracy on real text is too low ({plan.output_names[0]}, "
            f"{result.sentences} sentences): {'; '.join(result.misses())}; "
            f"{len(plan.float_layers)} Linear layers were kept float32; nothing was written. "
            f"{BF16_INSTEAD}; --accuracy-gate accepts a lower gate"
        )
    return {
        **int8.describe_method(plan.float_layers, plan.layer_choices),
        "accuracy": {"output": plan.output_names[0], **result.to_json()},
        "gate_summary": result.summary(),
        "calibration_accuracy": plan.calibration.to_json() if plan.calibration else None,
    }


def _check_embedding(
    source: model_source.ModelSource, plan: _TracePlan, options: ExportOptions
) -> dict[str, Any]:
    """The sentence-transformers pipeline against SentenceTransformer.encode; its manifest
    record. An ExportError when they disagree; warnings where the export truncates elsewhere
    than sentence-transformers or could not be compared."""
    pipeline = source.embedding
    assert pipeline is not None
    reference = None
    if source.tokenizer_json is not None:
        with model_source.quiet_transformers():
            reference = sentence_embedding.check_against_encode(
                source.directory,
                pipeline,
                plan.float_wrapper,
                [(spec.name, spec.role) for spec in plan.specs],
                source.tokenizer_json,
                max_length=plan.trace_length,
                pad_token_id=plan.pad_token_id,
                dtype=options.dtype,
                atol=options.atol,
                device=options.target,
            )
    if reference is None:
        warnings.warn(
            "the sentence-transformers pipeline was not compared with SentenceTransformer.encode"
            + (
                ": sentence-transformers is not installed (pip install sentence-transformers)"
                if source.tokenizer_json is not None
                else ": the model has no tokenizer"
            ),
            UserWarning,
            stacklevel=3,
        )
    elif not reference.passed:
        raise ExportError(
            "the export's sentence embeddings differ from SentenceTransformer.encode on "
            f"{reference.texts} texts: min cosine {reference.min_cosine:.6f} (needs "
            f"{reference.required_cosine}), max|diff| {reference.max_abs_diff:.3g} (atol "
            f"{reference.atol:g}); nothing was written"
        )
    own_length = reference.max_seq_length if reference else pipeline.max_seq_length
    if own_length and own_length != plan.trace_length:
        warnings.warn(
            f"this export truncates texts at {plan.trace_length} tokens and sentence-transformers "
            f"at {own_length}: embeddings of longer texts differ from encode()"
            + (
                f"; export with --max-length {own_length} to match"
                if own_length > plan.trace_length
                else ""
            ),
            UserWarning,
            stacklevel=3,
        )
    record = pipeline.manifest_record(reference.to_json() if reference else None)
    record["max_seq_length"] = own_length
    return record


def _check_cross_encoder(
    source: model_source.ModelSource, plan: _TracePlan, options: ExportOptions
) -> dict[str, Any] | None:
    """A reranker's logits and scores against CrossEncoder.predict on real pairs; the record
    for the manifest's validation. An ExportError when they disagree."""
    if source.tokenizer_json is None or "logits" not in plan.output_names:
        return None
    with model_source.quiet_transformers():
        reference = cross_encoder.check_against_predict(
            source.directory,
            plan.float_wrapper,
            [(spec.name, spec.role) for spec in plan.specs],
            source.tokenizer_json,
            logits_index=plan.output_names.index("logits"),
            score_function=source.score_function or "softmax",
            max_length=plan.trace_length,
            pad_token_id=plan.pad_token_id,
            atol=options.atol,
            device=options.target,
        )
    if reference is None:
        warnings.warn(
            "the cross-encoder was not compared with CrossEncoder.predict: sentence-transformers "
            "is not installed (pip install sentence-transformers)",
            UserWarning,
            stacklevel=3,
        )
        return None
    if not reference.passed:
        raise ExportError(
            f"the export's scores differ from CrossEncoder.predict on {reference.pairs} text "
            f"pairs: max|diff| logits {reference.logits_max_abs_diff:.3g}, scores "
            f"{reference.scores_max_abs_diff:.3g} (atol {reference.atol:g}); nothing was written"
        )
    return reference.to_json()


def export(
    model: str | Path,
    output: str | Path,
    *,
    task: str = "auto",
    max_length: int | None = None,
    batch_size: int = 2,
    shapes: str = "auto",
    atol: float | None = None,
    untie_weights: bool = False,
    buckets: list[int] | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    quantize: str | None = None,
    accuracy_gate: str | None = None,
    backend: str = "jit",
    allow_untrained_head: bool = False,
    format: str | None = None,
    isa: str = "native",
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Trace `model` (a local Transformers model directory) to the TorchScript archive `output`.

    The trace is validated against the eager model at several shapes before anything is written;
    an export that fails validation raises ExportError and leaves no file behind. Arguments of
    the wrong type raise TypeError (also a ValueError), wrong values ValueError, before the
    model is loaded.

    `quantize="int8"` quantizes Linear layers to int8 (tsrunner.quantize) and holds the result
    to the accuracy gate on 2,000 real sentences (tsrunner.accuracy_gate): an export that misses
    it raises ExportError with the numbers; `accuracy_gate="mean_cosine=0.998,..."` accepts a
    lower gate.

    `backend="neuron"` traces with the AWS Neuron SDK (tsrunner.neuron): fixed shapes only.
    `format="aoti"` (implied by an output ending in `.pt2`) writes an AOTInductor package instead
    of TorchScript (tsrunner.aoti): torch.export with dynamic batch and sequence, compiled for
    this CPU (`isa="native"`) or for any AVX2 x86-64 CPU (`isa="avx2"`).
    A head task (question-answering, ...) on a checkpoint without that head's weights is refused
    (the head would be random) unless `allow_untrained_head=True`.
    sentence-transformers directories (modules.json) exported for feature-extraction get their
    embedding pipeline traced in as a `sentence_embedding` output, checked against
    `SentenceTransformer.encode`; a module that cannot be reproduced is refused.
    `progress`, when given, is called with a one-line description of each step as it starts.
    """
    started = time.perf_counter()
    step = progress or (lambda _message: None)
    adopted = ADOPTED_TRACE.get()
    arguments = locals()
    output = check_output_path(output)
    arguments["backend"] = resolve_backend(backend, format, output)
    options = validate_options(ExportOptions(**{name: arguments[name] for name in OPTION_NAMES}))
    archive = get_backend(options.backend)
    options = archive.check_options(options)

    step(f"load {model}")
    source, resolved = _load(model, options)
    if adopted is not None:
        source.embedding = None  # a plain trace holds no sentence-transformers pipeline
    plan = _plan(source, resolved, options, adopted.input_names if adopted else None)
    lengths = (
        f"buckets {', '.join(map(str, options.buckets))}"
        if options.buckets
        else f"{plan.length_name} {plan.trace_length}"
    )
    if archive.name == "aoti":
        archive.plan(plan.trace_length, [spec.shape for spec in plan.specs])  # type: ignore[attr-defined]
        step(
            f"export and compile (aoti, isa {options.isa}, tens of seconds): batch "
            f"{options.batch_size}, {lengths}"
        )
    else:
        step(f"trace ({archive.name}): batch {options.batch_size}, {lengths}")
    generates = adopted is None and _plan_generation(source, resolved, options, archive, plan)
    try:
        to_trace = plan.wrapper if adopted is None else adopted.wrapper(plan)
        traced, tracer_warnings = _trace(archive, to_trace, plan.methods)
    except ExportError:
        raise
    except Exception as error:
        raise ExportError(
            f"{type(source.model).__name__} could not be traced: {error}".splitlines()[0]
            + "; try another --task, or export the model with its own tools"
        ) from error

    checks = _validate(archive, traced, plan, options, step)
    generation_checks = []
    if generates and resolved.decoder:
        step("validate encode + decode with a KV cache against the eager model")
        generation_checks = seq2seq_export.validate(
            source.model,
            traced,
            plan.vocab_size or 1,
            options.atol,
            seq2seq_export.decoder_start_token_id(source.model),
            plan.wrapper.num_layers,
        )
    elif generates:
        step("validate prefill + decode with a KV cache against the eager model")
        generation_checks = generation_export.validate(
            source.model, traced, plan.vocab_size or 1, options.atol
        )
    dynamic = _judge(checks, options, plan)
    quantization = _check_int8_accuracy(plan, traced, options, step) if options.quantize else None
    embedding = _check_embedding(source, plan, options) if source.embedding else None
    reranker = (
        _check_cross_encoder(source, plan, options)
        if resolved.name == "text-classification"
        and cross_encoder.is_cross_encoder(source.directory, source.config)
        else None
    )
    with torch.inference_mode():
        example_outputs = plan.wrapper(*plan.example)
    symbols = sorted({dim for spec in plan.specs for dim in spec.shape if isinstance(dim, str)})
    decoder_start = getattr(source.config, "decoder_start_token_id", None)
    manifest = build_manifest(
        ManifestFacts(
            task=resolved,
            options=options,
            config=source.config,
            model_class=type(source.model).__name__,
            source_name=source.directory.resolve().name,
            inputs=plan.specs,
            outputs=_output_specs(
                plan.wrapper,
                plan.dummies,
                plan.traced_shape,
                example_outputs,
                plan.output_names,
                symbols,
            ),
            contract=shape_contract(
                dynamic=dynamic,
                checks=checks,
                batch_size=options.batch_size,
                trace_length=plan.trace_length,
                traced_sizes={s: plan.traced_shape.symbols()[s] for s in symbols},
                buckets=options.buckets,
            ),
            max_length=plan.trace_length,
            vocab_size=plan.vocab_size,
            pad_token_id=plan.pad_token_id,
            has_tokenizer=source.tokenizer_json is not None,
            sentence_embedding=embedding,
            cross_encoder=reranker,
            tied_groups=plan.tied_groups,
            checks=checks,
            tracer_warnings=tracer_warnings,
            quantization=quantization,
            mask_token_id=_mask_token_id(source) if resolved.name == "fill-mask" else None,
            decoder_start_token_id=int(decoder_start or 0) if resolved.decoder else None,
            image=source.image if plan.images else None,
            untrained=source.untrained,
            score_function=source.score_function,
            backend_record=(
                archive.manifest_record(traced)  # type: ignore[attr-defined]
                if hasattr(archive, "manifest_record")
                else None
            ),
        )
    )
    if generates:
        record = seq2seq_export if resolved.decoder else generation_export
        manifest["generation"] = record.manifest_record(
            source.model,
            plan.methods,
            generation_checks,
            max_context=_trace_length(source, options, False)[0],
            pad_token_id=plan.pad_token_id,
        )
        _warn_of_refusals(manifest)
    extra_files = {
        MANIFEST_RECORD: json.dumps(manifest, indent=2),
        CONFIG_RECORD: source.config.to_json_string(),
    }
    if source.tokenizer_json is not None:
        extra_files[TOKENIZER_RECORD] = source.tokenizer_json

    step(f"save {output}")
    with atomic_path(output) as temporary:
        archive.save(traced, temporary, extra_files)
        seal(temporary)
        _check_saved_archive(archive, temporary, plan.example, traced, options, plan.output_names)
        size = temporary.stat().st_size

    return ExportReport(
        output=output,
        manifest=manifest,
        checks=checks,
        tracer_warnings=tracer_warnings,
        size_bytes=size,
        seconds=time.perf_counter() - started,
    )


def _plan_generation(
    source: model_source.ModelSource,
    task: Task,
    options: ExportOptions,
    archive: Backend,
    plan: _TracePlan,
) -> bool:
    """Adds the prefill and decode methods (generation_export) to a causal-lm plan, or the encode
    and decode methods (seq2seq_export) to a text2text plan, where they apply: TorchScript,
    float32, one graph, a family known to trace."""
    seq2seq = task.name == "text2text" and seq2seq_export.supports_generation(source.model)
    decoder = task.name == "causal-lm" and generation_export.supports_generation(source.model)
    if not (seq2seq or decoder):
        return False
    if archive.name == "aoti":
        raise ExportError(
            f"{type(source.model).__name__} cannot generate from a .pt2 (AOTInductor) export: "
            "its generation methods (prefill or encode, and decode, with a KV cache) are "
            "TorchScript-only; export it to a .pt file"
        )
    unsupported = [
        reason
        for reason, applies in (
            (f"the {archive.name} backend", archive.name != "jit"),
            ("--buckets", bool(options.buckets)),
            ("--quantize", bool(options.quantize)),
            (f"--dtype {options.dtype}", options.dtype != "float32"),
            (f"--device {options.target.type}", options.target.type != "cpu"),
        )
        if applies
    ]
    if unsupported:
        warnings.warn(
            f"this export cannot generate (no generation methods) with {unsupported[0]}: "
            "generation exports are float32 TorchScript on the CPU for now",
            UserWarning,
            stacklevel=3,
        )
        return False
    if seq2seq:
        decoder = source.model.get_decoder()
        layers = len(decoder.layers if hasattr(decoder, "layers") else decoder.block)  # T5: block
        wrapper = seq2seq_export.Seq2SeqGenerationWrapper(plan.wrapper, layers).eval()
        methods = seq2seq_export.example_inputs(
            wrapper,
            plan.vocab_size or 1,
            options.batch_size,
            seq2seq_export.decoder_start_token_id(source.model),
        )
    else:
        wrapper = generation_export.GenerationWrapper(
            plan.wrapper, source.config.num_hidden_layers
        ).eval()
        methods = generation_export.example_inputs(
            wrapper, plan.vocab_size or 1, options.batch_size
        )
    plan.wrapper = plan.float_wrapper = wrapper
    plan.methods.update(methods)
    return True


def _warn_of_refusals(manifest: dict[str, Any]) -> None:
    """One warning naming what the saved generation_config.json asks for and the generator
    refuses (HF's beam sampling, processors it does not implement): generating with those
    settings would not give HF generate's output, so such requests are refused."""
    from . import _core

    refusals = _core.generation_refusals(json.dumps(manifest))
    if refusals:
        warnings.warn(
            "this export generates, but its generation_config.json asks for what tsrunner "
            f"refuses to generate with: {'; '.join(refusals)}",
            UserWarning,
            stacklevel=3,
        )


def _check_saved_archive(
    backend: Backend,
    path: Path,
    example: tuple[torch.Tensor, ...],
    traced: Any,
    options: ExportOptions,
    output_names: list[str],
) -> None:
    """The written file must pass the C++ runner's checks (digest included), load, and give the
    in-memory trace's outputs within the export's atol (a reloaded graph may be optimised
    differently, which moves float results by rounding, not more)."""
    from . import _core

    try:
        _core.verify_archive(path)
    except RuntimeError as error:
        raise ExportError(f"the saved archive fails the runner's checks: {error}") from error
    loaded = backend.load(path, options.target)
    differences = compare(traced, loaded, example, output_names)
    wrong = {name: diff for name, diff in differences.items() if not diff <= options.atol}
    if wrong:
        detail = ", ".join(f"{name} by {diff:.3g}" for name, diff in wrong.items())
        raise ExportError(
            f"the saved archive does not reproduce the trace: {detail} (atol {options.atol:g}); "
            "nothing was written"
        )
