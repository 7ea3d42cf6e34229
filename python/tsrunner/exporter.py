"""`tsrunner.export`: trace a Transformers model to one validated TorchScript archive."""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from . import model_source, neuron
from . import quantize as int8
from ._version import __version__
from .atomic import atomic_path
from .dummy_inputs import SEQUENCE, DummyInputs, InputSpec, Shape, input_specs
from .errors import ExportError
from .integrity import seal
from .manifest import CONFIG_RECORD, MANIFEST_RECORD, SCHEMA_VERSION, TOKENIZER_RECORD
from .tasks import resolve_task
from .validate import ShapeCheck, check_shape, decoder_length, validation_shapes
from .wrapper import NamedInputsWrapper, tensor_output_names

SHAPE_MODES = ("auto", "dynamic", "fixed")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Traced and eager run the same kernels, but half precision rounds differently wherever the
# trace fuses or reorders an operation: its tolerance follows the format's precision.
DEFAULT_ATOL = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
DEVICES = ("cpu", "cuda")


def _target_device(device: str) -> torch.device:
    if device.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be cpu or cuda[:N], not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device}: this torch ({torch.__version__}) sees no CUDA device; "
            "export on a CUDA machine with a CUDA build of torch, or use --device cpu"
        )
    return torch.device(device)


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


def bucket_method(length: int) -> str:
    """The TorchScript method of a bucketed export that takes `length` tokens."""
    return f"forward_{length}"


def _trace(
    wrapper: torch.nn.Module, methods: dict[str, tuple[torch.Tensor, ...]], backend: str = "jit"
):
    """Traces `wrapper`'s forward at each method's example inputs into one module (methods of one
    module share its parameters, so the weights are stored once); returns the traced module and
    the TracerWarnings it raised. The neuron backend compiles the forward method only."""
    for name in methods:
        if name != "forward":
            setattr(wrapper, name, wrapper.forward)
    with warnings.catch_warnings(record=True) as caught, model_source.quiet_transformers():
        warnings.simplefilter("always")
        with torch.no_grad():
            if backend == "neuron":
                traced = neuron.trace(wrapper, methods["forward"])
            elif len(methods) == 1:
                traced = torch.jit.trace(wrapper, methods["forward"], check_trace=False)
            else:
                traced = torch.jit.trace_module(wrapper, methods, check_trace=False)
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
    entry: dict[str, Any] = {
        "name": spec.name,
        "role": spec.role,
        "dtype": spec.dtype,
        "shape": list(spec.shape),
    }
    if spec.default:
        entry["default"] = spec.default
    if spec.value_range:
        entry["range"] = list(spec.value_range)
    return entry


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


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(len(id2label))]


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
    backend: str = "jit",
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Trace `model` (a local Transformers model directory) to the TorchScript archive `output`.

    The trace is validated against the eager model at several shapes before anything is written;
    an export that fails validation raises ExportError and leaves no file behind.

    `quantize="int8"` quantizes Linear layers to int8 (tsrunner.quantize) and also checks
    accuracy against the float32 model on real text.

    `backend="neuron"` traces with the AWS Neuron SDK (tsrunner.neuron): fixed shapes only.
    `progress`, when given, is called with a one-line description of each step as it starts.
    """
    started = time.perf_counter()
    step = progress or (lambda _message: None)
    if backend not in neuron.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(neuron.BACKENDS)}, not {backend!r}")
    if backend == "neuron":
        neuron.sdk()  # fails fast, before the model is loaded, when the SDK is missing
        if shapes == "dynamic" or buckets:
            raise ValueError(
                "--backend neuron compiles one static shape: it cannot be combined with "
                "--shapes dynamic or --buckets (export one model per length instead)"
            )
        if device != "cpu" or quantize:
            raise ValueError(
                "--backend neuron traces on the CPU (--device cpu) without --quantize; "
                "the Neuron compiler chooses the device precision itself"
            )
        shapes = "fixed"
    if shapes not in SHAPE_MODES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPE_MODES)}, not {shapes!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if atol is None:
        atol = DEFAULT_ATOL[dtype]
    if not atol > 0:
        raise ValueError(f"atol must be positive, not {atol}")
    if quantize is not None and quantize not in int8.QUANTIZE_MODES:
        modes = ", ".join(int8.QUANTIZE_MODES)
        raise ValueError(f"quantize must be one of {modes}, not {quantize!r}")
    if quantize and (dtype != "float32" or device != "cpu"):
        raise ValueError("--quantize int8 starts from a float32 model on the CPU")
    target = _target_device(device)
    if buckets:
        buckets = sorted(set(buckets))
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
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a directory; give a file name such as model.pt")

    step(f"load {model}")
    directory, config = model_source.load_config(
        model, revision=revision, trust_remote_code=trust_remote_code
    )
    resolved = resolve_task(task, getattr(config, "architectures", None))
    if buckets and (resolved.decoder or resolved.choices):
        raise ValueError(
            f"buckets are not supported for {resolved.name} exports yet; "
            "use --shapes fixed or dynamic"
        )
    source = model_source.load(directory, config, resolved, trust_remote_code=trust_remote_code)
    source.model.to(device=target, dtype=DTYPES[dtype])
    images = getattr(source.model, "main_input_name", "input_ids") == "pixel_values"
    if images:
        if source.image is None:
            raise ValueError(
                f"{type(source.model).__name__} takes images but its config has no image_size"
            )
        if max_length is not None or buckets:
            raise ValueError(
                "max_length applies to text; image exports take the config's "
                f"{source.image['height']}x{source.image['width']} images"
            )
        image_size = (source.image["channels"], source.image["height"], source.image["width"])
        trace_length = source.image["height"]
    else:
        image_size = (0, 0, 0)
        positions = getattr(source.config, "max_position_embeddings", None)
        if max_length is not None and positions and max_length > positions:
            raise ValueError(
                f"max_length {max_length} exceeds the model's {positions} position embeddings"
            )
        trace_length = max_length or _default_max_length(source)

    tied_groups = _tied_parameter_groups(source.model)
    if untie_weights and tied_groups:
        untie_weights_of(source.model, tied_groups)
        warnings.warn(
            "untied weights: the export holds independent copies of "
            + "; ".join(" = ".join(names) for names in tied_groups)
            + ". Fine for inference; training the export would desynchronise them.",
            UserWarning,
            stacklevel=2,
        )
    embeddings = source.model.get_input_embeddings()
    vocab_size = getattr(embeddings, "num_embeddings", None)
    specs = input_specs(source.model, resolved, vocab_size, image_size, pixel_dtype=dtype)
    pad_token_id = _pad_token_id(source)
    decoder_start = getattr(source.config, "decoder_start_token_id", None)
    dummies = DummyInputs(
        specs,
        source.tokenizer_json,
        pad_token_id,
        vocab_size,
        pairs=resolved.pairs,
        decoder_start_token_id=int(decoder_start or 0),
    )
    traced_shape = Shape(
        batch_size, trace_length, choices=2, decoder_sequence=decoder_length(trace_length)
    )
    traced_inputs = dummies.make(traced_shape, padded=batch_size > 1 and not images)
    dummies.device, dummies.dtype = target, DTYPES[dtype]
    traced_inputs = {name: dummies.place(value) for name, value in traced_inputs.items()}
    input_names = [spec.name for spec in specs]
    output_names = tensor_output_names(source.model, traced_inputs)
    float_wrapper = NamedInputsWrapper(source.model, input_names, output_names).eval()
    wrapper = float_wrapper
    if quantize:
        unsupported = [name for name in input_names if name not in int8.TEXT_INPUTS]
        if unsupported:
            raise ValueError(
                f"--quantize int8 supports text encoders (inputs {', '.join(int8.TEXT_INPUTS)}); "
                f"this {resolved.name} export also takes {', '.join(unsupported)}"
            )
        accuracy_batches = int8.text_batches(
            specs,
            source.tokenizer_json,
            pad_token_id,
            trace_length,
            lambda batch: dummies.make(Shape(batch, min(trace_length, 32)), padded=True),
        )
        quantized, float_layers, _ = int8.choose_quantized_model(
            source.model,
            lambda model: NamedInputsWrapper(model, input_names, output_names).eval(),
            accuracy_batches,
            output_names,
        )
        wrapper = NamedInputsWrapper(quantized, input_names, output_names).eval()
    example = tuple(traced_inputs.values())

    methods = {"forward": example}
    bucket_inputs: dict[int, tuple[Shape, tuple[torch.Tensor, ...]]] = {}
    for length in buckets or []:
        shape = dataclasses.replace(traced_shape, sequence=length)
        bucket_inputs[length] = (shape, tuple(dummies.make(shape, padded=batch_size > 1).values()))
        methods[bucket_method(length)] = bucket_inputs[length][1]
    length_name = "image height" if images else "sequence"
    step(
        f"trace ({backend}): batch {batch_size}, "
        + (
            f"buckets {', '.join(map(str, buckets))}"
            if buckets
            else f"{length_name} {trace_length}"
        )
    )
    try:
        traced, tracer_warnings = _trace(wrapper, methods, backend)
    except Exception as error:
        raise ExportError(
            f"{type(source.model).__name__} could not be traced: {error}".splitlines()[0]
            + "; try another --task, or export the model with its own tools"
        ) from error

    checks: list[ShapeCheck] = []
    shapes_to_check = validation_shapes(batch_size, trace_length, images=images)
    if buckets:
        shapes_to_check = []  # every bucket is checked at its own length below
    if backend == "neuron":
        shapes_to_check = shapes_to_check[:1]  # a Neuron graph takes its traced shape only
    total_checks = len(bucket_inputs) + len(shapes_to_check)
    for length, (shape, inputs) in reversed(bucket_inputs.items()):
        step(f"validate shape {len(checks) + 1}/{total_checks}: bucket {length}")
        method = getattr(traced, bucket_method(length))
        checks.append(
            check_shape(wrapper, method, inputs, output_names, atol, shape=shape, padded=True)
        )
    for shape, padded in shapes_to_check:
        step(
            f"validate shape {len(checks) + 1}/{total_checks}: batch {shape.batch}, "
            f"{length_name} {shape.sequence}" + (" (padded)" if padded else "")
        )
        inputs = tuple(dummies.make(shape, padded=padded).values())
        checks.append(
            check_shape(wrapper, traced, inputs, output_names, atol, shape=shape, padded=padded)
        )

    traced_check = next((c for c in checks if not c.passed), checks[0]) if buckets else checks[0]
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
    if shapes == "dynamic" and not all_passed:
        failed = [f"{c.batch}x{c.sequence}" for c in checks if not c.passed]
        raise ExportError(
            f"the trace does not generalise to shapes {', '.join(failed)} within atol {atol:g}; "
            "export with --shapes fixed (the runner then takes exactly the traced length)"
        )
    dynamic = all_passed and shapes != "fixed" and not images and not buckets
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
    symbols = sorted({dim for spec in specs for dim in spec.shape if isinstance(dim, str)})
    traced_sizes = {symbol: traced_shape.symbols()[symbol] for symbol in symbols}

    manifest: dict[str, Any] = {
        "format": "tsrunner",
        "schema_version": SCHEMA_VERSION,
        "task": resolved.name,
        "model": {
            "type": source.config.model_type,
            "class": type(source.model).__name__,
            "source": source.directory.resolve().name,
            "attn_implementation": getattr(source.config, "_attn_implementation", None) or "",
            "dtype": dtype,
            "traced_on": target.type,
        },
        "backend": backend,
        "inputs": [_io_spec(spec) for spec in specs],
        "outputs": _output_specs(
            wrapper, dummies, traced_shape, example_outputs, output_names, symbols
        ),
        "shape_contract": {
            "kind": "dynamic" if dynamic else "fixed",
            "min_batch": 1,
            "min_sequence": min(validated_lengths) if dynamic else trace_length,
            "max_sequence": trace_length,
            "validated_batch": [min(c.batch for c in checks), max(c.batch for c in checks)],
            "traced": {"batch": batch_size, "sequence": trace_length, **traced_sizes},
            **({"buckets": buckets} if buckets else {}),
        },
        "max_length": trace_length,
        "vocab_size": vocab_size,
        "type_vocab_size": getattr(source.config, "type_vocab_size", None),
        "pad_token_id": pad_token_id,
        "tokenizer": TOKENIZER_RECORD if source.tokenizer_json is not None else None,
        "config": CONFIG_RECORD,
        "pooling": source.pooling,
        "tied_weights": [{"parameters": names, "untied": untie_weights} for names in tied_groups],
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
    if resolved.has_labels:
        manifest["labels"] = _labels(source.config)
    if resolved.name == "fill-mask":
        manifest["mask_token_id"] = _mask_token_id(source)
    if resolved.decoder:
        manifest["decoder_start_token_id"] = int(decoder_start or 0)
    if images:
        manifest["image"] = source.image
    extra_files = {
        MANIFEST_RECORD: json.dumps(manifest, indent=2),
        CONFIG_RECORD: source.config.to_json_string(),
    }
    if source.tokenizer_json is not None:
        extra_files[TOKENIZER_RECORD] = source.tokenizer_json

    step(f"save {output}")
    with atomic_path(output) as temporary, warnings.catch_warnings():
        # torch.jit.save/load warn that TorchScript is deprecated; that is why tsrunner exists.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(temporary), _extra_files=extra_files)
        seal(temporary)
        _check_saved_archive(temporary, example, traced, target)
        size = temporary.stat().st_size

    return ExportReport(
        output=output,
        manifest=manifest,
        checks=checks,
        tracer_warnings=tracer_warnings,
        size_bytes=size,
        seconds=time.perf_counter() - started,
    )


def _check_saved_archive(
    path: Path, example: tuple[torch.Tensor, ...], traced, device: torch.device
) -> None:
    """The written file must pass the C++ runner's checks (digest included), load, and reproduce
    the in-memory trace bit for bit."""
    from . import _core

    try:
        _core.verify_archive(path)
    except RuntimeError as error:
        raise ExportError(f"the saved archive fails the runner's checks: {error}") from error
    loaded = torch.jit.load(str(path), map_location=device)
    with torch.inference_mode():
        want = traced(*example)
        got = loaded(*example)
    if not all(torch.equal(a, b) for a, b in zip(want, got, strict=True)):
        raise ExportError("the saved archive does not reproduce the trace; nothing was written")
