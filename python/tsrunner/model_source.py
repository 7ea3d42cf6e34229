"""Loading the model, its tokenizer and its sentence-transformers pipeline from a model
directory."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from .cross_encoder import is_cross_encoder
from .sentence_embedding import EmbeddingPipeline, read_pipeline
from .tasks import Task


@dataclass
class ModelSource:
    directory: Path
    config: transformers.PretrainedConfig
    model: torch.nn.Module
    tokenizer_json: str | None  # the HF fast tokenizer, serialized
    # sentence-transformers' pipeline after the Transformer (feature-extraction exports only)
    embedding: EmbeddingPipeline | None
    image: dict[str, Any] | None = None  # image preprocessing (preprocessor_config.json)
    # Parameters the checkpoint lacked (or had in another shape): Transformers initialised
    # them at random, as it reports when loading.
    untrained: list[str] = field(default_factory=list)
    # Classification: what turns logits into scores ("softmax", "sigmoid", "none"), as
    # Transformers' pipeline and sentence-transformers' CrossEncoder choose it.
    score_function: str | None = None
    # Whether Transformers' tokenizer returns token_type_ids (its model_input_names): pipelines
    # and sentence-transformers feed the model only what it returns, so the export takes them
    # only then (the model reads zeros otherwise). True without a tokenizer Transformers loads.
    sends_type_ids: bool = True


# owner/name or name, as the Hugging Face hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_snapshot(model: str, revision: str | None) -> Path:
    """The local snapshot of a hub model: from the hub cache, or downloaded when online."""
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(model, revision=revision))
    except Exception as error:
        reason = " ".join(str(error).split())[:160]
        raise ValueError(
            f"model directory not found: {model}; as a hub id it could not be fetched "
            f"({type(error).__name__}: {reason}). Export from a local directory "
            "(`hf download ID --local-dir DIR`, then tsrunner export DIR), or "
            "pre-fill the hub cache and set HF_HUB_OFFLINE=1 on offline machines"
        ) from error


def _check_directory(model: str | Path, revision: str | None = None) -> Path:
    directory = Path(model)
    if directory.is_dir():
        if revision is not None:
            raise ValueError(f"revision applies to hub ids; {directory} is a local directory")
        if not (directory / "config.json").is_file():
            raise ValueError(f"{directory} has no config.json: it is not a Transformers model")
        return directory
    if directory.exists():
        raise ValueError(f"{directory} is a file; MODEL must be a local model directory")
    if _HUB_ID.match(str(model)):
        return _check_directory(_hub_snapshot(str(model), revision))
    raise ValueError(
        f"model directory not found: {model}. tsrunner exports from a local directory "
        "(config.json + weights); download hub models first, e.g. with "
        "`hf download ID --local-dir DIR`"
    )


# Files a slow tokenizer is built from (tokenizer.json is the fast one, read as is).
_TOKENIZER_SOURCES = (
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def _read_tokenizer(directory: Path) -> str | None:
    tokenizer_file = directory / "tokenizer.json"
    if tokenizer_file.is_file():
        return tokenizer_file.read_text(encoding="utf-8")
    if not any((directory / name).is_file() for name in _TOKENIZER_SOURCES):
        # Transformers 5 builds an empty tokenizer from nothing; that is no tokenizer.
        return None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    except Exception:  # a model without a usable tokenizer exports with token-id input only
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend.to_str() if backend is not None else None


def tokenizer_sends_type_ids(directory: Path, *, trust_remote_code: bool = False) -> bool:
    """Whether the tokenizer Transformers loads for `directory` returns token_type_ids, as its
    `__call__` decides (model_input_names, which tokenizer_config.json may override). A model
    whose tokenizer sends none (RoBERTa, ALBERT and DeBERTa-v2 in Transformers 5, many saved
    rerankers) gets zeros, however its tokenizer.json's template numbers a pair's segments."""
    if not any((directory / name).is_file() for name in ("tokenizer.json", *_TOKENIZER_SOURCES)):
        return True
    try:
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                directory, trust_remote_code=trust_remote_code
            )
    except Exception:  # no reference to follow: type ids as the tokenizer.json makes them
        return True
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silences Transformers' progress bars and advice while we load and trace; the export
    report says what matters."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()


def _read_image_processing(directory: Path, config: Any) -> dict[str, Any] | None:
    """What a caller must do to an image before pixel_values: size, mean and std."""
    if getattr(config, "image_size", None) is None:
        return None
    size = config.image_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    image: dict[str, Any] = {
        "height": int(height),
        "width": int(width),
        "channels": int(getattr(config, "num_channels", 3)),
    }
    processor_file = directory / "preprocessor_config.json"
    if processor_file.is_file():
        processor = json.loads(processor_file.read_text())
        for key in ("image_mean", "image_std", "rescale_factor", "do_normalize"):
            if key in processor:
                image[key.removeprefix("image_")] = processor[key]
    return image


def load_config(
    model: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> tuple[Path, transformers.PretrainedConfig]:
    directory = _check_directory(model, revision)
    with quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(
                directory, trust_remote_code=trust_remote_code
            )
        except ValueError as error:
            if "custom code" in str(error):
                raise ValueError(
                    f"{model} contains custom model code, which runs only with "
                    "--trust-remote-code (trust_remote_code=True); review that code first"
                ) from error
            raise ValueError(" ".join(str(error).split())[:300]) from error
    return directory, config


def load(
    directory: Path,
    config: transformers.PretrainedConfig,
    task: Task,
    *,
    trust_remote_code: bool = False,
) -> ModelSource:
    tokenizer_json = _read_tokenizer(directory)
    embedding = None
    if task.name == "feature-extraction":  # refuses what it cannot reproduce, before loading
        embedding = read_pipeline(
            directory, config, tokenizer_json, tokenizer_max_length(directory)
        )
    score_function = None
    if task.name == "text-classification":
        score_function = read_score_function(directory, config)
    auto_class = getattr(transformers, task.auto_class)
    architectures = getattr(config, "architectures", None) or []
    if (
        task.name == "feature-extraction"
        and architectures
        and architectures[0].endswith("EncoderModel")
        and hasattr(transformers, architectures[0])
    ):
        # An encoder saved alone (T5EncoderModel, the text encoder of many diffusion and
        # sentence-T5 models): its config still says T5, whose AutoModel is the full
        # encoder-decoder and would want decoder inputs.
        auto_class = getattr(transformers, architectures[0])
    with quiet_transformers():
        try:
            loaded, loading_info = auto_class.from_pretrained(
                directory,
                config=config,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
            )
        except ValueError as error:  # e.g. --task text2text on BERT: Transformers has no class
            reason = " ".join(str(error).split())
            if "Unrecognized configuration class" in reason:
                reason = (
                    f"--task {task.name} does not apply to {type(config).__name__} "
                    f"(Transformers has no {task.auto_class} for model type "
                    f"{config.model_type!r}); pick another --task"
                )
            raise ValueError(reason[:300]) from error
    untrained = sorted(
        {*loading_info.get("missing_keys", ()), *_mismatched(loading_info.get("mismatched_keys"))}
    )
    if task.name == "feature-extraction" and getattr(config, "is_encoder_decoder", False):
        # The features of an encoder-decoder model are its encoder's hidden states.
        loaded = loaded.get_encoder()
    loaded.eval()
    return ModelSource(
        directory=directory,
        config=config,
        model=loaded,
        tokenizer_json=tokenizer_json,
        embedding=embedding,
        untrained=untrained,
        score_function=score_function,
        image=_read_image_processing(directory, config),
        sends_type_ids=tokenizer_json is None
        or tokenizer_sends_type_ids(directory, trust_remote_code=trust_remote_code),
    )


# transformers' tokenizers report this as model_max_length when none was configured.
_UNSET_LENGTH = 10**20


def tokenizer_max_length(directory: Path) -> int | None:
    """model_max_length from tokenizer_config.json: where the model's own tokenizer truncates
    (sentence-transformers 5+ saves max_seq_length there)."""
    config_file = directory / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    length = json.loads(config_file.read_text(encoding="utf-8")).get("model_max_length")
    is_number = isinstance(length, (int, float)) and not isinstance(length, bool)
    return int(length) if is_number and 0 < length < _UNSET_LENGTH else None


# CrossEncoder activation_fn paths (torch.nn classes) and the score function each one is.
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "none", "Softmax": "softmax"}


def read_score_function(directory: Path, config: Any) -> str:
    """How scores come from logits: a CrossEncoder's saved activation_fn (or its default:
    sigmoid for one label, none otherwise); else as Transformers' text-classification pipeline
    decides (one label or multi-label: sigmoid, regression: none, else softmax)."""
    settings_file = directory / "config_sentence_transformers.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    legacy = getattr(config, "sentence_transformers", None)
    path = (
        settings.get("activation_fn")
        or (legacy.get("activation_fn") if isinstance(legacy, dict) else None)
        or getattr(config, "sbert_ce_default_activation_function", None)
    )
    cross_encoder = is_cross_encoder(directory, config)
    if cross_encoder and (
        settings.get("default_prompt_name") or any((settings.get("prompts") or {}).values())
    ):
        raise ValueError(
            f"{directory.name}: this CrossEncoder has prompts, which tsrunner does not apply to "
            "pairs; refusing an export that would score differently"
        )
    if path:
        name = str(path).rpartition(".")[2]
        if not str(path).startswith("torch.") or name not in _ACTIVATIONS:
            raise ValueError(
                f"{directory.name}: CrossEncoder activation_fn {path} cannot be reproduced "
                f"(tsrunner applies {', '.join(_ACTIVATIONS)})"
            )
        return _ACTIVATIONS[name]
    if cross_encoder:
        return "sigmoid" if config.num_labels == 1 else "none"
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def _mismatched(entries: Any) -> list[str]:
    """Names of mismatched_keys entries (Transformers gives (name, saved, model) tuples)."""
    return [entry[0] if isinstance(entry, tuple) else str(entry) for entry in entries or ()]


def usable_positions(model: torch.nn.Module, config: Any) -> tuple[int | None, int]:
    """How many tokens the position embeddings take, and the offset they start at: RoBERTa-family
    embeddings number positions from padding_idx + 1, so max_position_embeddings 514 holds 512."""
    positions = getattr(config, "max_position_embeddings", None)
    if not positions or positions < 0:
        return None, 0
    for module in model.modules():
        padding_idx = getattr(module, "padding_idx", None)
        embedding = getattr(module, "position_embeddings", None)
        if isinstance(padding_idx, int) and isinstance(embedding, torch.nn.Embedding):
            offset = padding_idx + 1
            return int(positions) - offset, offset
    return int(positions), 0
