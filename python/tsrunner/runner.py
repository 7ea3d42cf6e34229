"""tsrunner.Runner: the C++ runner plus text in, answers out (predict)."""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from . import _core, generation

RunnerOptions = _core.RunnerOptions

# Every field of tsrunner::RunnerOptions, as the binding exposes them (one source: the C++ struct).
OPTION_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(RunnerOptions).items() if isinstance(value, property)
)


# The fields that are unset (None) by default, so their default says nothing of their type:
# unset means "the TSR_* environment variable, else the built-in default" (docs/environment.md).
_OPTIONAL_FIELD_TYPES: dict[str, type] = {
    "fused_attention": str,
    "fused_layer_norm": bool,
    "bf16_kernel": bool,
    "small_gemm_rows": int,
}


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _choice_lists(choices: Any, texts: int, with_pairs: bool) -> list[list[str]]:
    """predict()'s `choices` checked: one list of strings per text."""
    if with_pairs:
        raise ValueError("give text_pairs or choices, not both")
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise ValueError("choices must be a list of strings per text")
    lists = [list(c) if isinstance(c, Sequence) and not isinstance(c, str) else c for c in choices]
    if len(lists) != texts:
        raise ValueError(f"got {texts} texts but {len(lists)} lists of choices")
    for i, listed in enumerate(lists):
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            raise ValueError(f"choices[{i}] must be a list of strings")
    return lists


def make_options(**options: Any) -> RunnerOptions:
    """A RunnerOptions from keywords (None keeps a field's default). Raises TypeError naming an
    unknown keyword or a value of the wrong type, in one line."""
    built = RunnerOptions()
    for name, value in options.items():
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(name, OPTION_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown Runner option {name!r}{hint}; valid options: {', '.join(OPTION_NAMES)}"
            )
        if value is None:
            continue
        expected = _OPTIONAL_FIELD_TYPES.get(name) or type(getattr(built, name))
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            raise TypeError(f"{name} must be {expected.__name__}, not {value!r}")
        try:
            setattr(built, name, value)
        except TypeError:  # out of the C++ type's range (a negative byte count, 2**70 threads)
            raise ValueError(f"{name}={value!r} is out of range") from None
    return built


class Runner(_core.Runner):
    """Loads a tsrunner export and runs it with libtsrunner (C++). Thread-safe.

    `run(dict[str, Tensor])` runs tensors; `predict(texts)` tokenizes with the export's own
    tokenizer (natively), runs and returns the task's answer per text.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        interop_threads: int | None = None,
        device: str | None = None,
        warmup_runs: int | None = None,
        warmup_sequence: int | None = None,
        optimize_graph: bool | None = None,
        freeze: bool | None = None,
        kernel_path: str | None = None,
        compute: str | None = None,
        fused_attention: str | None = None,
        fused_layer_norm: bool | None = None,
        bf16_kernel: bool | None = None,
        small_gemm_rows: int | None = None,
        max_archive_bytes: int | None = None,
        max_embedded_file_bytes: int | None = None,
        verify_integrity: bool | None = None,
        expected_sha256: str | None = None,
        engine: str | None = None,
        **unknown: NoReturn,
    ):
        """Keywords are the fields of RunnerOptions (docs/cpp-api.md); None keeps the C++
        default. An unknown keyword raises TypeError naming it and the valid ones; a value out
        of range raises ValueError (tsrunner.InvalidInput). `engine` is kernel_path's deprecated
        first name."""
        if engine is not None:
            warnings.warn(
                "Runner(engine=...) is deprecated; use kernel_path=",
                DeprecationWarning,
                stacklevel=2,
            )
            if kernel_path is not None and kernel_path != engine:
                raise TypeError("give kernel_path or its deprecated name engine, not both")
            kernel_path = engine
        options = make_options(
            threads=threads,
            interop_threads=interop_threads,
            device=device,
            warmup_runs=warmup_runs,
            warmup_sequence=warmup_sequence,
            optimize_graph=optimize_graph,
            freeze=freeze,
            kernel_path=kernel_path,
            compute=compute,
            fused_attention=fused_attention,
            fused_layer_norm=fused_layer_norm,
            bf16_kernel=bf16_kernel,
            small_gemm_rows=small_gemm_rows,
            max_archive_bytes=max_archive_bytes,
            max_embedded_file_bytes=max_embedded_file_bytes,
            verify_integrity=verify_integrity,
            expected_sha256=expected_sha256,
            **unknown,
        )
        super().__init__(path, options)
        self._path = os.fspath(path)
        if self.manifest.get("plain_module"):
            from .manifest import plain_module_note

            warnings.warn(plain_module_note(path), UserWarning, stacklevel=2)
        self._pipeline: _core.Pipeline | None = None  # made on the first predict()
        # The request queues predict() submits to, by concurrent_batches (its workers): calls
        # from many threads join each other's batches.
        self._queues: dict[int, _core.RequestQueue] = {}
        self._pipeline_lock = threading.Lock()
        self._generator: _core.Generator | None = None  # made on the first generate()

    @property
    def engine(self) -> str:
        """Deprecated: kernel_path under its first name."""
        warnings.warn(
            "Runner.engine is deprecated; use kernel_path", DeprecationWarning, stacklevel=2
        )
        return self.kernel_path

    @property
    def engine_reason(self) -> str:
        """Deprecated: kernel_path_reason under its first name."""
        warnings.warn(
            "Runner.engine_reason is deprecated; use kernel_path_reason",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.kernel_path_reason

    def _generation(self) -> _core.Generator:
        with self._pipeline_lock:
            if self._generator is None:
                self._generator = _core.Generator.over(self)
        return self._generator

    def generate(
        self,
        prompts: generation.Prompt | Sequence[generation.Prompt],
        *,
        stream: bool = False,
        details: bool = False,
        **params: Any,
    ) -> Any:
        """Continuations of a prompt (str or token ids: returns a str) or of a list of them (a
        list), generated natively (tsrunner.generation lists the parameters); an encoder-decoder's
        prompt is its source. `details=True` returns dicts with text, token_ids, finish_reason
        and prompt_tokens (beam search adds score, and alternatives with num_return_sequences);
        `stream=True` returns Runner.stream's iterator. Bad parameters raise ValueError naming
        them."""
        if stream:
            return self.stream(prompts, **params)
        params = generation.as_hf_reads(self.manifest, params)
        return generation.generate(self._generation(), prompts, details, params)

    def stream(
        self, prompts: generation.Prompt | Sequence[generation.Prompt], **params: Any
    ) -> Iterator[Any]:
        """The text of generate() as it is made: str pieces for one prompt, (index, piece)
        for several; the pieces of a prompt concatenate to its generate() text."""
        params = generation.as_hf_reads(self.manifest, params)
        return generation.stream(self._generation(), prompts, params)

    def __reduce__(self) -> NoReturn:
        # A loaded model is native state of this process: a worker loads the file itself.
        raise TypeError(
            f"a tsrunner.Runner cannot be pickled: pass the archive path ({self._path!r}) and "
            "load a Runner in each worker (tsrunner.integrations.ray and .spark do that)"
        )

    def predict(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        batch_size: int = 32,
        top_k: int | None = None,
        max_answer_length: int = 15,
        concurrent_batches: int = 1,
        doc_stride: int | None = None,
        prompt_name: str | None = None,
        normalize: bool | None = None,
        truncate: bool | None = None,
        choices: Sequence[str] | Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per text, in order, keyed by the export's task (Hugging Face pipeline keys;
        offsets are character offsets into the text, or into the pair for answers):

        - feature-extraction: {"embedding": [floats]}
        - text-classification: {"labels": [{"label", "score"}, ...]} best first; `top_k`
          keeps that many (default all)
        - fill-mask: {"masks": [{"position", "candidates": [{"token", "token_str", "score"}]}]}
          one per mask token; `top_k` candidates each (default 5)
        - token-classification: {"entities": [{"entity_group", "score", "word", "start",
          "end"}]}, B-/I- tags merged as aggregation_strategy="simple"
        - question-answering (question in `texts`, context in `text_pairs`): {"answer":
          {"text", "score", "start", "end"}} with at most `max_answer_length` tokens; a
          context too long for the export is cut into windows of min(max_length, 384) tokens
          sharing `doc_stride` (default min(window // 2, 128)), as Transformers does, and the
          best answer of all windows wins
        - multiple-choice (each text with its `choices`: a list of two or more strings for one
          text, or one such list per text): {"choices": [{"choice", "score"}], "best": index},
          scores the softmax over the text's choices, each choice paired with the text as
          Transformers' *ForMultipleChoice models are trained

        `prompt_name` (sentence-transformers exports) puts that saved prompt before every text;
        None uses the model's default prompt, if it has one, as SentenceTransformer.encode does.

        `normalize` (feature-extraction): None keeps the export's own normalisation; True makes
        unit vectors of an export that does not normalise; False on an export that normalises
        inside its graph (a sentence-transformers Normalize module) raises ValueError. `truncate`:
        None or True cuts a text longer than the export's max_length as its tokenizer does (as
        Transformers' pipelines); False raises ValueError naming the length instead (as
        text-embeddings-inference's truncate=false).

        The dicts are the JSON that `tsrun` prints for the same input, parsed: floats are the
        shortest decimals of the float32 results, NaN is None.

        Every call goes through one request queue (libtsrunner's RequestQueue): texts are
        tokenized on the calling thread, then wait with the texts of calls from other threads
        and run in batches of similar length (at most `batch_size` of this call's texts per
        batch) on the queue's worker threads; `runner.queue_stats()` counts them. Calls with
        different task options never share a batch.

        `concurrent_batches` > 1 runs that many batches at once (the queue's workers), each with
        this runner's `threads`: on short texts `threads=1, concurrent_batches=<cores>` is
        fastest. Worker threads are started once per `concurrent_batches` value and reused by
        later calls; they take the intra-op thread count of the thread that first asked.
        """
        if isinstance(texts, str):
            texts = [texts]
            if choices is not None and all(isinstance(c, str) for c in choices):
                choices = [choices]
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] must be a str, got {type(text).__name__}")
        if text_pairs is not None:
            text_pairs = list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text pairs")
            for i, pair in enumerate(text_pairs):
                if not isinstance(pair, str):
                    raise ValueError(f"text_pairs[{i}] must be a str, got {type(pair).__name__}")
        if choices is not None:
            choices = _choice_lists(choices, len(texts), text_pairs is not None)
        if not _is_positive_int(batch_size):
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if not _is_int_in(concurrent_batches, 1, _core.MAX_CONCURRENT_BATCHES):
            raise ValueError(
                f"concurrent_batches must be an int from 1 to {_core.MAX_CONCURRENT_BATCHES}, "
                f"not {concurrent_batches!r}"
            )
        if top_k is not None and not _is_positive_int(top_k):
            raise ValueError(f"top_k must be a positive int or None, not {top_k!r}")
        if not _is_positive_int(max_answer_length):
            raise ValueError(f"max_answer_length must be a positive int, not {max_answer_length!r}")
        if doc_stride is not None and not _is_int_in(doc_stride, 0, 2**31 - 1):
            raise ValueError(
                f"doc_stride must be an int from 0 to 2**31-1 or None, not {doc_stride!r}"
            )
        if prompt_name is not None and not isinstance(prompt_name, str):
            raise ValueError(f"prompt_name must be a str or None, not {prompt_name!r}")
        for name, value in (("normalize", normalize), ("truncate", truncate)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool or None, not {value!r}")
        return self._queue(concurrent_batches).predict(
            texts,
            text_pairs,
            choices,
            batch_size,
            top_k,
            max_answer_length,
            doc_stride,
            prompt_name,
            normalize,
            truncate,
        )

    def _queue(self, workers: int) -> _core.RequestQueue:
        with self._pipeline_lock:  # one pipeline: the task options travel with each call
            if self._pipeline is None:
                self._pipeline = _core.Pipeline.over(self)
            queue = self._queues.get(workers)
            if queue is None:
                queue = self._queues[workers] = _core.RequestQueue.over(self._pipeline, workers)
            return queue

    def queue_stats(self, concurrent_batches: int = 1) -> dict[str, int]:
        """What predict()'s queue for `concurrent_batches` has done: submissions (calls),
        inputs (texts), batches, batched_inputs, padded_tokens, largest_batch."""
        return self._queue(concurrent_batches).stats()
