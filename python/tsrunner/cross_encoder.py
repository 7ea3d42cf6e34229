"""Proving a reranker export right: its logits and scores against sentence-transformers'
`CrossEncoder.predict` on real text pairs, as bi-encoders are checked against `encode`.

The shape checks compare the trace with the eager model on the same inputs; this compares the
whole path a user compares with (tokenizer, type ids, truncation, score function) against the
library the model was saved by.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import sample_text
from .dummy_inputs import padded_inputs

REFERENCE_PAIRS = 12


def is_cross_encoder(directory: Path, config: Any) -> bool:
    """Saved by sentence-transformers' CrossEncoder: v4+ (config_sentence_transformers.json),
    v3 (config.sentence_transformers) or older (sbert_ce_default_activation_function)."""
    settings_file = directory / "config_sentence_transformers.json"
    if settings_file.is_file():
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        if settings.get("model_type") == "CrossEncoder":
            return True
    return (
        getattr(config, "sentence_transformers", None) is not None
        or getattr(config, "sbert_ce_default_activation_function", None) is not None
    )


@dataclass
class CrossEncoderCheck:
    """The export against CrossEncoder.predict on `pairs` real (query, passage) pairs."""

    library: str
    pairs: int
    logits_max_abs_diff: float  # predict(activation_fn=Identity) against the export's logits
    scores_max_abs_diff: float  # predict() against the export's logits through score_function
    atol: float
    max_length: int  # both sides truncate pairs here

    @property
    def passed(self) -> bool:
        return max(self.logits_max_abs_diff, self.scores_max_abs_diff) <= self.atol

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def reference_pairs(tokenizer: Any, max_length: int) -> list[tuple[str, str]]:
    """Queries and passages of varied lengths, and one pair longer than `max_length` tokens."""
    queries = sample_text.sample(3, offset=300)
    passages = sample_text.sample(REFERENCE_PAIRS - 1, offset=330)
    pairs = [(queries[index % len(queries)], passage) for index, passage in enumerate(passages)]
    count = 8
    long_passage = " ".join(sample_text.sample(count, offset=360))
    while len(tokenizer.encode(queries[0], long_passage).ids) <= max_length and count < 4096:
        count *= 2
        long_passage = " ".join(sample_text.sample(count, offset=360))
    return [*pairs, (queries[0], long_passage)]


def _scores(logits: torch.Tensor, score_function: str) -> torch.Tensor:
    """What Runner.predict reports from logits (task_outputs.cc)."""
    if score_function == "sigmoid":
        return torch.sigmoid(logits)
    if score_function == "softmax":
        return torch.softmax(logits, dim=-1)
    return logits


def check_against_predict(
    directory: Path,
    model: Callable[..., tuple[torch.Tensor, ...]],
    input_roles: list[tuple[str, str]],
    tokenizer_json: str,
    *,
    logits_index: int,
    score_function: str,
    max_length: int,
    pad_token_id: int,
    atol: float,
    device: torch.device,
) -> CrossEncoderCheck | None:
    """Compares `model` (the eager wrapper; output `logits_index` is the logits) fed as the
    runner feeds it (the tokenizer.json, only the inputs in `input_roles`) with
    CrossEncoder.predict, both truncating at `max_length`. None when sentence-transformers is
    not installed."""
    try:
        import sentence_transformers
    except ImportError:
        return None
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    pairs = reference_pairs(tokenizer, max_length)
    tokenizer.enable_truncation(max_length)
    encodings = tokenizer.encode_batch(pairs)
    inputs = tuple(
        value.to(device) for value in padded_inputs(encodings, input_roles, pad_token_id)
    )
    with torch.inference_mode():
        logits = model(*inputs)[logits_index].double().cpu()
    logger = logging.getLogger("sentence_transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = sentence_transformers.CrossEncoder(
                str(directory), device="cpu", local_files_only=True
            )
            reference.max_seq_length = max_length
            want_logits, want_scores = (
                reference.predict(
                    pairs, activation_fn=activation, convert_to_tensor=True, batch_size=len(pairs)
                )
                .double()
                .cpu()
                .reshape(logits.shape)
                for activation in (torch.nn.Identity(), None)
            )
    finally:
        logger.setLevel(level)
    return CrossEncoderCheck(
        library=f"sentence-transformers {sentence_transformers.__version__}",
        pairs=len(pairs),
        logits_max_abs_diff=float((want_logits - logits).abs().max()),
        scores_max_abs_diff=float((want_scores - _scores(logits, score_function)).abs().max()),
        atol=atol,
        max_length=max_length,
    )
