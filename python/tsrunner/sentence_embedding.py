"""sentence-transformers models: their embedding pipeline, rebuilt as a traceable head.

A directory saved by sentence-transformers lists its modules in modules.json: a Transformer,
then Pooling, and often Dense, LayerNorm and Normalize. `read_pipeline` reads every module's
saved configuration and weights and rebuilds what follows the Transformer as one torch module
(`SentenceEmbeddingHead`), which the exporter traces into the graph as an extra
`sentence_embedding` output: every runtime (tsrun, Runner, Triton) then gets the embedding
`SentenceTransformer.encode` gives, without re-implementing pooling. A module tsrunner cannot
reproduce exactly is refused with an UnsupportedModule error naming it: never a silent
difference. The exporter checks the result against `SentenceTransformer.encode` itself
(`check_against_encode`) when sentence-transformers is installed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import sample_text
from .dummy_inputs import padded_inputs

OUTPUT_NAME = "sentence_embedding"
# Pooling modes in the order sentence-transformers concatenates them (legacy boolean keys).
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# sentence_bert_config.json and the names older versions saved it under.
TRANSFORMER_CONFIGS = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# Module types reproduced here, by class name (modules.json gives the full import path, which
# moved between sentence-transformers versions).
SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "LayerNorm", "Normalize", "Dropout")


class UnsupportedModule(ValueError):
    """A sentence-transformers module (or setting) tsrunner cannot reproduce exactly."""


def _refuse(directory: Path, module: dict[str, Any] | None, reason: str) -> UnsupportedModule:
    where = f"module {module.get('path') or module.get('name') or '?'} " if module else ""
    return UnsupportedModule(
        f"{directory.name}: sentence-transformers {where}{reason}; tsrunner refuses to export an "
        "embedding it cannot reproduce (export with --task fill-mask or another head to skip "
        "the sentence-transformers pipeline)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _load_weights(module_dir: Path) -> dict[str, torch.Tensor]:
    safetensors_file = module_dir / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    torch_file = module_dir / "pytorch_model.bin"
    if torch_file.is_file():
        return torch.load(str(torch_file), map_location="cpu", weights_only=True)
    return {}


class Pooling(torch.nn.Module):
    """sentence-transformers' Pooling over padded token embeddings (its `_forward_padded`), for
    one or several modes whose results are concatenated in the order given."""

    def __init__(self, modes: tuple[str, ...]):
        super().__init__()
        self.modes = modes

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        accumulation = torch.float32 if tokens.dtype in (torch.float16, torch.bfloat16) else None
        accumulation = accumulation or tokens.dtype
        vectors = []
        for mode in self.modes:
            if mode == "cls":
                first = mask.to(torch.int32).argmax(dim=1)
                index = first.view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
                vectors.append(torch.gather(tokens, 1, index).squeeze(1))
            elif mode == "max":
                real = mask.unsqueeze(-1).expand_as(tokens).to(tokens.dtype)
                vectors.append(tokens.masked_fill(real == 0, float("-inf")).max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                real = mask.unsqueeze(-1).to(tokens.dtype)
                total = (tokens * real).sum(dim=1, dtype=accumulation)
                count = torch.clamp(real.sum(dim=1, dtype=accumulation), min=1e-9)
                divisor = count if mode == "mean" else torch.sqrt(count)
                vectors.append((total / divisor).to(tokens.dtype))
            elif mode == "weightedmean":
                real = mask.unsqueeze(-1).to(accumulation)
                positions = torch.arange(
                    1, tokens.shape[1] + 1, device=tokens.device, dtype=accumulation
                ).view(1, -1, 1)
                # Weights count from the first real token (left padding shifts them).
                positions = positions - mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1)
                weights = real * positions
                total = (tokens * weights).sum(dim=1)
                vectors.append((total / torch.clamp(weights.sum(dim=1), min=1e-9)).to(tokens.dtype))
            else:  # lasttoken: the last real token, with left or right padding
                length = tokens.shape[1]
                values, indices = mask.to(torch.int32).flip(1).max(1)
                indices = torch.where(values == 0, length - 1, indices)
                index = (length - indices - 1).view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
                real = mask.unsqueeze(-1).expand_as(tokens).to(tokens.dtype)
                vectors.append(torch.gather(tokens * real, 1, index).squeeze(1))
        return torch.cat(vectors, dim=-1)


class Dense(torch.nn.Module):
    """sentence-transformers' Dense: activation(linear(x)), plus an optional residual."""

    def __init__(self, linear: torch.nn.Linear, activation: torch.nn.Module, residual):
        super().__init__()
        self.linear = linear
        self.activation = activation
        self.use_residual = residual is not None
        self.residual = residual if isinstance(residual, torch.nn.Module) else torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(x))
        return out + self.residual(x) if self.use_residual else out


class Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, p=2.0, dim=-1)


class SentenceEmbeddingHead(torch.nn.Module):
    """Token embeddings and attention mask in, the sentence embedding out."""

    def __init__(self, pooling: Pooling, after: list[torch.nn.Module]):
        super().__init__()
        self.pooling = pooling
        self.after = torch.nn.Sequential(*after)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.after(self.pooling(tokens, mask))


@dataclass
class EmbeddingPipeline:
    """A sentence-transformers model's pipeline after the Transformer, ready to trace."""

    head: SentenceEmbeddingHead
    modules: list[dict[str, Any]]  # what the manifest records, one entry per module
    dimension: int
    max_seq_length: int | None  # what sentence-transformers truncates at
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity: str | None = None

    def prompt(self, name: str | None) -> str:
        """The text put before every input for `name`; None picks the default prompt."""
        name = self.default_prompt_name if name is None else name
        return self.prompts[name] if name is not None else ""

    def manifest_record(self, reference: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "output": OUTPUT_NAME,
            "dimension": self.dimension,
            "modules": self.modules,
            "max_seq_length": self.max_seq_length,
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "similarity": self.similarity,
            "reference": reference,
        }


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(name for key, name in POOLING_MODES.items() if config.get(key))
        return modes or ("mean",)
    return (mode,) if isinstance(mode, str) else tuple(mode)


def _activation(directory: Path, module: dict[str, Any], path: str | None) -> torch.nn.Module:
    if path is None:
        return torch.nn.Tanh()  # sentence-transformers' default
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("torch."):
        raise _refuse(directory, module, f"has the activation {path}, which is not a torch.nn one")
    try:
        activation = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise _refuse(directory, module, f"has an unknown activation {path}") from None
    if not (inspect.isclass(activation) and issubclass(activation, torch.nn.Module)):
        raise _refuse(directory, module, f"has the activation {path}, not a torch.nn.Module")
    return activation()


def _dense(directory: Path, module: dict[str, Any], module_dir: Path) -> tuple[Dense, dict]:
    config = _read_json(module_dir / "config.json")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, OUTPUT_NAME) not in (OUTPUT_NAME, None):
            raise _refuse(directory, module, f"reads or writes {config[key]!r}, not the embedding")
    in_features, out_features = int(config["in_features"]), int(config["out_features"])
    bias = bool(config.get("bias", True))
    weights = _load_weights(module_dir)
    linear = torch.nn.Linear(in_features, out_features, bias=bias)
    residual: torch.nn.Module | bool | None = None
    expected = {"linear.weight", *(["linear.bias"] if bias else [])}
    if config.get("use_residual"):
        residual = True
        if in_features != out_features:
            residual = torch.nn.Linear(in_features, out_features, bias=False)
            expected.add("residual.weight")
    if set(weights) != expected:
        raise _refuse(
            directory, module, f"holds weights {sorted(weights)}, expected {sorted(expected)}"
        )
    with torch.no_grad():
        linear.weight.copy_(weights["linear.weight"])
        if bias:
            linear.bias.copy_(weights["linear.bias"])
        if isinstance(residual, torch.nn.Linear):
            residual.weight.copy_(weights["residual.weight"])
    activation_path = config.get("activation_function")
    activation = _activation(directory, module, activation_path)
    record = {
        "type": "Dense",
        "in_features": in_features,
        "out_features": out_features,
        "bias": bias,
        "activation": type(activation).__name__,
        **({"residual": True} if residual is not None else {}),
    }
    return Dense(linear, activation, residual), record


def _layer_norm(directory: Path, module: dict[str, Any], module_dir: Path):
    dimension = int(_read_json(module_dir / "config.json")["dimension"])
    norm = torch.nn.LayerNorm(dimension)
    weights = _load_weights(module_dir)
    if set(weights) != {"norm.weight", "norm.bias"}:
        raise _refuse(directory, module, f"holds weights {sorted(weights)}")
    with torch.no_grad():
        norm.weight.copy_(weights["norm.weight"])
        norm.bias.copy_(weights["norm.bias"])
    return norm, {"type": "LayerNorm", "dimension": dimension}


def _has_lowercase(normalizer: dict[str, Any] | None) -> bool:
    if not normalizer:
        return False
    kind = normalizer.get("type")
    if kind == "Lowercase" or (kind == "BertNormalizer" and normalizer.get("lowercase")):
        return True
    return kind == "Sequence" and any(_has_lowercase(n) for n in normalizer.get("normalizers", []))


def _transformer(
    directory: Path,
    module: dict[str, Any],
    config: Any,
    tokenizer_json: str | None,
    tokenizer_max_length: int | None,
) -> tuple[int | None, dict[str, Any]]:
    """Checks the Transformer module's settings; returns sentence-transformers' max_seq_length
    (as its Transformer computes it) and the module's manifest record."""
    if module.get("path", "") not in ("", "."):
        raise _refuse(
            directory,
            module,
            "keeps the Transformer in a subdirectory (an old layout); export that directory "
            "with --task feature-extraction, or re-save the model with sentence-transformers",
        )
    settings: dict[str, Any] = {}
    for name in TRANSFORMER_CONFIGS:
        settings = _read_json(directory / name)
        if settings:
            break
    task = settings.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise _refuse(directory, module, f"has transformer_task {task!r}")
    modalities = settings.get("modality_config") or {"text": {}}
    text = modalities.get("text", {})
    if set(modalities) != {"text"} or text.get("method_output_name", "last_hidden_state") != (
        "last_hidden_state"
    ):
        raise _refuse(directory, module, f"has the modality_config {modalities}")
    for key in ("processing_kwargs", "query_length", "document_length", "query_expansion"):
        if settings.get(key):
            raise _refuse(directory, module, f"sets {key} {settings[key]!r}")
    if settings.get("do_lower_case"):
        normalizer = json.loads(tokenizer_json).get("normalizer") if tokenizer_json else None
        if not _has_lowercase(normalizer):
            raise _refuse(
                directory, module, "lowercases text (do_lower_case) and the tokenizer does not"
            )
    positions = getattr(config, "max_position_embeddings", None)
    max_seq_length = settings.get("max_seq_length")
    if max_seq_length is None:
        candidates = [tokenizer_max_length] if tokenizer_max_length else []
        if positions and positions != -1:
            candidates.append(int(positions))
        max_seq_length = min(candidates) if candidates else None
    record = {"type": "Transformer", "max_seq_length": max_seq_length}
    return (int(max_seq_length) if max_seq_length else None), record


def _prompts(directory: Path) -> tuple[dict[str, str], str | None, str | None]:
    settings = _read_json(directory / "config_sentence_transformers.json")
    kind = settings.get("model_type", "SentenceTransformer")
    if kind != "SentenceTransformer":
        raise _refuse(directory, None, f"model_type {kind!r} is not a SentenceTransformer")
    prompts = {
        str(k): ("" if v is None else str(v)) for k, v in (settings.get("prompts") or {}).items()
    }
    default = settings.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise _refuse(directory, None, f"default_prompt_name {default!r} names no prompt")
    return prompts, default, settings.get("similarity_fn_name")


def is_sentence_transformer(directory: Path) -> bool:
    return (directory / "modules.json").is_file()


def read_pipeline(
    directory: Path, config: Any, tokenizer_json: str | None, tokenizer_max_length: int | None
) -> EmbeddingPipeline | None:
    """The embedding pipeline of a sentence-transformers directory (None for other models), or
    UnsupportedModule naming the first module that cannot be reproduced exactly.
    `tokenizer_max_length` is tokenizer_config.json's model_max_length, where sentence-
    transformers 5+ keeps max_seq_length."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = []
    pooling: Pooling | None = None
    after: list[torch.nn.Module] = []
    dimension = int(getattr(config, "hidden_size", 0) or 0)
    max_seq_length: int | None = None
    for index, module in enumerate(modules):
        kind = str(module.get("type", "")).rpartition(".")[2]
        module_dir = directory / str(module.get("path", ""))
        if kind not in SUPPORTED_MODULES:
            raise _refuse(directory, module, f"is a {kind or 'module of unknown type'}")
        if (index == 0) != (kind == "Transformer"):
            raise _refuse(
                directory,
                module,
                "is out of place: tsrunner reproduces a Transformer "
                "followed by Pooling and optional Dense, LayerNorm, Normalize",
            )
        if kind == "Transformer":
            max_seq_length, record = _transformer(
                directory, module, config, tokenizer_json, tokenizer_max_length
            )
        elif kind == "Pooling":
            if pooling is not None or after:
                raise _refuse(directory, module, "is a second Pooling, or follows Dense/Normalize")
            settings = _read_json(module_dir / "config.json")
            modes = _pooling_modes(settings)
            unknown = [m for m in modes if m not in POOLING_MODES.values()]
            if unknown:
                raise _refuse(directory, module, f"has pooling mode {unknown[0]!r}")
            if settings.get("include_prompt", True) is False:
                raise _refuse(directory, module, "excludes prompt tokens (include_prompt false)")
            width = int(
                settings.get("embedding_dimension") or settings.get("word_embedding_dimension") or 0
            )
            if dimension and width and width != dimension:
                raise _refuse(
                    directory, module, f"pools {width}-wide tokens; the model gives {dimension}"
                )
            pooling = Pooling(modes)
            dimension *= len(modes)
            record = {"type": "Pooling", "modes": list(modes)}
        elif pooling is None:
            raise _refuse(directory, module, f"is a {kind} before any Pooling")
        elif kind == "Dense":
            dense, record = _dense(directory, module, module_dir)
            if record["in_features"] != dimension:
                raise _refuse(
                    directory,
                    module,
                    f"takes {record['in_features']} features, the embedding has {dimension}",
                )
            after.append(dense)
            dimension = record["out_features"]
        elif kind == "LayerNorm":
            norm, record = _layer_norm(directory, module, module_dir)
            after.append(norm)
        elif kind == "Normalize":
            settings = _read_json(module_dir / "config.json")
            for key in ("module_input_name", "module_output_name"):
                if settings.get(key, OUTPUT_NAME) not in (OUTPUT_NAME, None):
                    raise _refuse(
                        directory, module, f"normalizes {settings[key]!r}, not the embedding"
                    )
            after.append(Normalize())
            record = {"type": "Normalize"}
        else:  # Dropout: the identity at inference
            record = {"type": "Dropout"}
        records.append({**record, "path": str(module.get("path", ""))})
    if pooling is None:
        raise _refuse(directory, None, "modules.json has no Pooling module")
    prompts, default_prompt_name, similarity = _prompts(directory)
    return EmbeddingPipeline(
        head=SentenceEmbeddingHead(pooling, after).eval(),
        modules=records,
        dimension=dimension,
        max_seq_length=max_seq_length,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        similarity=similarity,
    )


# Agreement with SentenceTransformer.encode the export must reach, per dtype of the export.
MIN_COSINE = {"float32": 0.9999, "float16": 0.999, "bfloat16": 0.99}
REFERENCE_TEXTS = 6


@dataclass
class ReferenceCheck:
    """The export's embedding pipeline against SentenceTransformer.encode on real text."""

    library: str
    texts: int
    prompts: list[str | None]  # None: no prompt_name (the default prompt, if any)
    min_cosine: float
    max_abs_diff: float
    required_cosine: float
    atol: float
    max_seq_length: int | None  # where sentence-transformers itself truncates

    @property
    def passed(self) -> bool:
        return self.min_cosine >= self.required_cosine and self.max_abs_diff <= self.atol

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def reference_texts(tokenizer: Any, max_length: int) -> list[str]:
    """Real sentences of varied lengths, and one longer than `max_length` tokens (truncation)."""
    texts = sample_text.sample(REFERENCE_TEXTS - 1, offset=700)
    long_text = " ".join(sample_text.sample(8, offset=720))
    count = 8
    while len(tokenizer.encode(long_text).ids) <= max_length and count < 4096:
        count *= 2
        long_text = " ".join(sample_text.sample(count, offset=720))
    return [*texts, long_text]


def _encode_as_exported(
    model: Callable[..., tuple[torch.Tensor, ...]],
    input_roles: list[tuple[str, str]],
    tokenizer: Any,
    texts: list[str],
    pad_token_id: int,
    device: torch.device,
) -> torch.Tensor:
    """The export's embedding of `texts` (prompt included), tokenized as the runner does:
    truncated at the export's max_length, padded on the right."""
    encodings = tokenizer.encode_batch(texts)
    inputs = tuple(
        value.to(device) for value in padded_inputs(encodings, input_roles, pad_token_id)
    )
    with torch.inference_mode():
        return model(*inputs)[-1].double().cpu()


def check_against_encode(
    directory: Path,
    pipeline: EmbeddingPipeline,
    model: Callable[..., tuple[torch.Tensor, ...]],
    input_roles: list[tuple[str, str]],
    tokenizer_json: str,
    *,
    max_length: int,
    pad_token_id: int,
    dtype: str,
    atol: float,
    device: torch.device,
) -> ReferenceCheck | None:
    """Compares `model` (the eager wrapper whose last output is the sentence embedding) with
    SentenceTransformer.encode, with no prompt name and with every named prompt, truncating at
    `max_length` on both sides (the exporter warns when sentence-transformers' own
    max_seq_length differs). None when sentence-transformers is not installed."""
    try:
        import sentence_transformers
    except ImportError:
        return None
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    texts = reference_texts(tokenizer, max_length)
    tokenizer.enable_truncation(max_length)
    logger = logging.getLogger("sentence_transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = sentence_transformers.SentenceTransformer(
                str(directory), device="cpu", local_files_only=True
            )
            own_max_seq_length = reference.max_seq_length
            reference.max_seq_length = max_length
            names: list[str | None] = [None, *sorted(pipeline.prompts)]
            cosines, diffs = [], []
            for name in names:
                want = reference.encode(
                    texts, prompt_name=name, convert_to_tensor=True, batch_size=len(texts)
                )
                prompt = pipeline.prompt(name)
                got = _encode_as_exported(
                    model,
                    input_roles,
                    tokenizer,
                    [prompt + text for text in texts],
                    pad_token_id,
                    device,
                )
                want = want.double().cpu()
                cosines.append(torch.nn.functional.cosine_similarity(want, got, dim=1).min())
                diffs.append((want - got).abs().max())
    finally:
        logger.setLevel(level)
    return ReferenceCheck(
        library=f"sentence-transformers {sentence_transformers.__version__}",
        texts=len(texts),
        prompts=names,
        min_cosine=float(torch.stack(cosines).min()),
        max_abs_diff=float(torch.stack(diffs).max()),
        required_cosine=MIN_COSINE[dtype],
        atol=atol,
        max_seq_length=own_max_seq_length,
    )
