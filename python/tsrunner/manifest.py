"""The manifest: the contract between the exporter and the runners, stored in the archive.

Its schema is documented in docs/format.md and defined once, in manifest.schema.json, which
build_manifest follows and the tests check every export against; the C++ side
(cpp/src/manifest.cc) parses the same file. Both refuse a schema newer than they know.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from . import _core
from ._version import __version__
from .dummy_inputs import InputSpec
from .export_options import ExportOptions
from .tasks import Task
from .validate import ShapeCheck

SCHEMA_VERSION: int = _core.MANIFEST_SCHEMA_VERSION
MANIFEST_RECORD = "tsrunner/manifest.json"
TOKENIZER_RECORD = "tsrunner/tokenizer.json"
CONFIG_RECORD = "tsrunner/config.json"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export, read without loading (running) any TorchScript code.

    Raises tsrunner.LoadError when the file is missing, not TorchScript, or has no manifest.
    """
    return json.loads(_core.read_manifest(Path(path)))


def read_archive_file(path: str | os.PathLike[str], name: str) -> str | None:
    """A file embedded in an export (such as TOKENIZER_RECORD), or None when it has none.

    Like read_manifest, this reads the zip archive directly and runs no TorchScript code.
    """
    return _core.read_archive_file(Path(path), name)


def plain_module_note(path: str | os.PathLike[str]) -> str:
    """What a plain TorchScript module (no tsrunner manifest, manifest["plain_module"]) lacks, in
    one line, and the fix."""
    return (
        f"{os.fspath(path)} is a plain TorchScript module (no tsrunner manifest): inputs by "
        "forward's argument names, dtypes and shapes unchecked, no content digest; "
        f"`tsrunner adopt {os.fspath(path)} --model MODEL_DIR -o model.pt` makes a full archive"
    )


def describe(manifest: dict[str, Any]) -> str:
    """The readable summary `tsrunner info` and `tsrun info` print (one implementation, C++)."""
    return _core.describe_manifest(json.dumps(manifest))


def schema() -> dict[str, Any]:
    """The JSON Schema of the current manifest version."""
    return json.loads((Path(__file__).parent / "manifest.schema.json").read_text())


def io_spec(spec: InputSpec) -> dict[str, Any]:
    """One entry of the manifest's "inputs"."""
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


def labels_of(config: Any) -> list[str]:
    """Label names by class index (config.id2label), LABEL_<i> where one is missing."""
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(len(id2label))]


def shape_contract(
    *,
    dynamic: bool,
    checks: list[ShapeCheck],
    batch_size: int,
    trace_length: int,
    traced_sizes: dict[str, int],
    buckets: tuple[int, ...],
) -> dict[str, Any]:
    """The shapes the export was validated for: dynamic down to the shortest validated length,
    or fixed at the traced length (bucketed: one fixed length per bucket)."""
    validated_lengths = [check.sequence for check in checks if check.passed]
    return {
        "kind": "dynamic" if dynamic else "fixed",
        "min_batch": 1,
        "min_sequence": min(validated_lengths) if dynamic else trace_length,
        "max_sequence": trace_length,
        "validated_batch": [min(c.batch for c in checks), max(c.batch for c in checks)],
        "traced": {"batch": batch_size, "sequence": trace_length, **traced_sizes},
        **({"buckets": list(buckets)} if buckets else {}),
    }


@dataclass
class ManifestFacts:
    """Everything an export learned that the manifest records, gathered by the exporter."""

    task: Task
    options: ExportOptions
    config: Any  # the model's transformers config
    model_class: str
    source_name: str
    inputs: list[InputSpec]
    outputs: list[dict[str, Any]]
    contract: dict[str, Any]
    max_length: int
    vocab_size: int | None
    pad_token_id: int
    has_tokenizer: bool
    sentence_embedding: dict[str, Any] | None  # sentence-transformers models
    cross_encoder: dict[str, Any] | None  # rerankers: the check against CrossEncoder.predict
    tied_groups: list[list[str]]
    checks: list[ShapeCheck]
    tracer_warnings: list[str]
    quantization: dict[str, Any] | None = None
    mask_token_id: int | None = None
    decoder_start_token_id: int | None = None
    image: dict[str, Any] | None = None
    untrained: list[str] = field(default_factory=list)  # randomly initialised, exported anyway
    score_function: str | None = None  # text-classification: softmax, sigmoid or none
    backend_record: dict[str, Any] | None = None  # aoti: what the compiled code needs


def build_manifest(facts: ManifestFacts) -> dict[str, Any]:
    """The manifest of one export, as manifest.schema.json defines it."""
    options, config = facts.options, facts.config
    manifest: dict[str, Any] = {
        "format": "tsrunner",
        "schema_version": SCHEMA_VERSION,
        "task": facts.task.name,
        "model": {
            "type": config.model_type,
            "class": facts.model_class,
            "source": facts.source_name,
            "attn_implementation": getattr(config, "_attn_implementation", None) or "",
            "dtype": options.dtype,
            "traced_on": options.target.type,
            **({"untrained_parameters": facts.untrained} if facts.untrained else {}),
        },
        "backend": options.backend,
        "inputs": [io_spec(spec) for spec in facts.inputs],
        "outputs": facts.outputs,
        "shape_contract": facts.contract,
        "max_length": facts.max_length,
        "vocab_size": facts.vocab_size,
        "type_vocab_size": getattr(config, "type_vocab_size", None),
        "pad_token_id": facts.pad_token_id,
        "tokenizer": TOKENIZER_RECORD if facts.has_tokenizer else None,
        "config": CONFIG_RECORD,
        "sentence_embedding": facts.sentence_embedding,
        "tied_weights": [
            {"parameters": names, "untied": options.untie_weights} for names in facts.tied_groups
        ],
        "validation": {
            "atol": options.atol,
            "passed": True,
            "checks": [check.to_json() for check in facts.checks],
            "tracer_warnings": facts.tracer_warnings,
            **({"cross_encoder": facts.cross_encoder} if facts.cross_encoder else {}),
        },
        **({"quantization": facts.quantization} if facts.quantization else {}),
        "versions": {
            "tsrunner": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if facts.task.has_labels:
        manifest["labels"] = labels_of(config)
    if facts.task.name == "text-classification":
        manifest["score_function"] = facts.score_function or "softmax"
    if facts.task.name == "fill-mask":
        manifest["mask_token_id"] = facts.mask_token_id
    if facts.task.decoder:
        manifest["decoder_start_token_id"] = int(facts.decoder_start_token_id or 0)
    if facts.image:
        manifest["image"] = facts.image
    if facts.backend_record is not None:
        manifest[options.backend] = facts.backend_record
    return manifest
