"""Loading the model, its tokenizer and its pooling settings from a local model directory."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from .tasks import Task


@dataclass
class ModelSource:
    directory: Path
    config: transformers.PretrainedConfig
    model: torch.nn.Module
    tokenizer_json: str | None  # the HF fast tokenizer, serialized
    pooling: dict[str, Any] | None  # sentence-transformers pooling, when the directory has it
    image: dict[str, Any] | None = None  # image preprocessing (preprocessor_config.json)


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
            "(`huggingface-cli download ID --local-dir DIR`, then tsrunner export DIR), or "
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
        "`huggingface-cli download ID --local-dir DIR`"
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


# sentence-transformers' Pooling config flags, in the order it gives them precedence.
_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)


def _read_pooling(directory: Path) -> dict[str, Any] | None:
    """Pooling and normalisation as sentence-transformers configures them (modules.json)."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    pooling: dict[str, Any] | None = None
    normalize = False
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Pooling"):
            config = json.loads((directory / module["path"] / "config.json").read_text())
            mode = next(
                (name for key, name in _POOLING_FLAGS if config.get(key)),
                config.get("pooling_mode", "mean"),
            )
            pooling = {"mode": mode, "source": "sentence-transformers"}
        elif kind.endswith("Normalize"):
            normalize = True
    if pooling is not None:
        pooling["normalize"] = normalize
    return pooling


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
        loaded = auto_class.from_pretrained(
            directory, config=config, trust_remote_code=trust_remote_code
        )
    if task.name == "feature-extraction" and getattr(config, "is_encoder_decoder", False):
        # The features of an encoder-decoder model are its encoder's hidden states.
        loaded = loaded.get_encoder()
    loaded.eval()
    return ModelSource(
        directory=directory,
        config=config,
        model=loaded,
        tokenizer_json=_read_tokenizer(directory),
        pooling=_read_pooling(directory),
        image=_read_image_processing(directory, config),
    )
