"""Runner.generate and Runner.stream: text generation with libtsrunner's C++ Generator.

Parameters are HF generate's names (max_new_tokens, min_new_tokens, do_sample, temperature,
top_k, top_p, min_p, repetition_penalty, no_repeat_ngram_size, eos_token_id, num_beams,
length_penalty, early_stopping, num_return_sequences) plus `seed`, `stop` (up to 4 strings) and
`ignore_eos`; unset ones take the model's generation_config.json defaults, as HF generate
applies them (docs/generation.md). For an encoder-decoder (T5, BART) a prompt is the source.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from . import _core

Prompt = str | Sequence[int]

_DONE = object()


def _as_batch(prompts: Prompt | Sequence[Prompt]) -> tuple[list[Any], bool]:
    """(prompts as a list, whether one prompt was given)."""
    if isinstance(prompts, str):
        return [prompts], True
    items = list(prompts)
    if items and all(isinstance(item, int) for item in items):
        return [items], True  # one prompt of token ids
    for item in items:
        if not isinstance(item, str) and not (
            isinstance(item, Sequence) and all(isinstance(i, int) for i in item)
        ):
            raise ValueError(
                f"a prompt must be a str or a list of token ids, not {type(item).__name__}"
            )
    return [item if isinstance(item, str) else list(item) for item in items], False


_SAMPLING_PARAMETERS = ("temperature", "top_k", "top_p", "min_p")


def as_hf_reads(manifest: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`params` read as HF generate reads them: temperature, top_k, top_p and min_p do not turn
    sampling on (libtsrunner's Generator takes them as OpenAI and TGI do, as a request to
    sample). Without do_sample the model's saved do_sample decides; when that is false, decoding
    is greedy and a UserWarning says so, as HF generate warns."""
    given = [name for name in _SAMPLING_PARAMETERS if params.get(name) is not None]
    if params.get("do_sample") is not None or not given:
        return params
    defaults = (manifest.get("generation") or {}).get("defaults") or {}
    saved = bool(defaults.get("do_sample", False))
    if not saved:
        warnings.warn(
            f"{', '.join(given)} only apply when sampling, and this model's generation config has "
            "do_sample=False: decoding greedily, as HF generate does; pass do_sample=True to "
            "sample",
            UserWarning,
            stacklevel=3,
        )
    return {**params, "do_sample": saved}


def generate(
    generator: _core.Generator,
    prompts: Prompt | Sequence[Prompt],
    details: bool,
    params: dict[str, Any],
) -> Any:
    batch, single = _as_batch(prompts)
    results = generator.generate(batch, params) if batch else []
    answers = results if details else [result["text"] for result in results]
    return answers[0] if single else answers


def stream(
    generator: _core.Generator,
    prompts: Prompt | Sequence[Prompt],
    params: dict[str, Any],
) -> Iterator[Any]:
    """Text pieces as they become final: str for one prompt, (index, str) for several. The
    generation runs on its own thread; leaving the loop early cancels it at the next step."""
    batch, single = _as_batch(prompts)
    pieces: queue.Queue[Any] = queue.Queue()
    cancelled = threading.Event()
    failure: list[BaseException] = []

    def on_chunk(index: int, _token: int, text: str, _finish: str | None) -> bool:
        if text:
            pieces.put((index, text))
        return not cancelled.is_set()

    def work() -> None:
        try:
            generator.generate(batch, params, on_chunk)
        except BaseException as error:  # re-raised on the consumer's thread
            failure.append(error)
        finally:
            pieces.put(_DONE)

    thread = threading.Thread(target=work, name="tsrunner-generate", daemon=True)
    thread.start()
    try:
        while (item := pieces.get()) is not _DONE:
            yield item[1] if single else item
    finally:
        cancelled.set()
        thread.join()
    if failure:
        raise failure[0]
