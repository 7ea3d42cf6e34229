"""Whether an export runs from text: `Runner.predict` and `tsrun --input` (JSON lines) against
the eager Transformers model fed by HF tokenization of the same texts (the model directory's own
tokenizer, loaded by Transformers), for the support matrix's "from text" column.

    check(directory, path, task) -> "yes" or "no: <why>"

Task by task, the reference is what Transformers' pipelines compute: the labels' softmax
(text-classification, single texts and pairs), the top tokens at each mask and their decoded
strings (fill-mask), the token-classification pipeline with aggregation_strategy="simple",
Transformers 4's question-answering algorithm (`reference_answer`), mean-pooled hidden states
(feature-extraction) and the choices' softmax (multiple-choice: a text with its choices).
A disagreement raises AssertionError naming the task, the text and what differs.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import tokenizer_fixtures

ATOL = 1e-4
MAX_LENGTH = 16  # the tiny exports' --max-length: longer texts are truncated like HF's
MASK = "{mask}"  # where fill-mask texts take the tokenizer's mask token
TEXTS = [
    "Jim Henson was a puppeteer from New York.",
    "The café in Zürich serves crêpes 🙂 today",
    "don't split   these\tWORDS, or 42 numbers!",
    "中文 text ① ﬁ",
]
PAIRS = ["Who was he?", "A second sentence", "", "x"]
MASKED = [f"Paris is the {MASK} of France.", f"The {MASK} sat on the {MASK}."]
TEXT_TASKS = (
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "token-classification",
    "question-answering",
)
# Short questions leave room for the context in 16 tokens; contexts longer than that are cut into
# windows sharing DOC_STRIDE tokens (HF refuses a stride as long as the room left).
QUESTIONS = [
    ("Who?", "Jim Henson was a nice puppeteer from New York City."),
    ("Where is it?", "The café is in Zürich, next to the unbelievably old station."),
    ("What?", "中文 text 🙂 here"),
]
DOC_STRIDE = 3


def _tsrun() -> str:
    beside = Path(sys.executable).parent / "tsrun"
    return str(beside) if beside.is_file() else "tsrun"


def _tsrun_lines(
    path: Path, lines: list[dict[str, str]], options: list[str]
) -> list[dict[str, Any]]:
    """tsrun --input over JSON lines (one process, every line), its JSON answers in order."""
    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir) / "in.jsonl"
        source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        target = Path(workdir) / "out.jsonl"
        run = subprocess.run(
            [
                _tsrun(),
                str(path),
                "--input",
                str(source),
                "--output",
                str(target),
                "--threads",
                "1",
                *options,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, f"tsrun --input failed: {run.stderr.strip()}"
        return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


def _assert_close(got: Any, want: Any, where: str) -> None:
    """Equal JSON-like values, floats within ATOL."""
    if isinstance(want, float) or isinstance(got, float):
        assert abs(float(got) - float(want)) <= ATOL, f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: {got} != {want}"
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _model_inputs(model, encoded) -> dict[str, Any]:
    """The tokenizer's tensors the model's forward takes (DistilBERT has no token_type_ids)."""
    accepted = inspect.signature(model.forward).parameters
    return {name: value for name, value in encoded.items() if name in accepted}


def _encode(tokenizer, text: str, pair: str | None, **options):
    """Transformers' tokenization of one input, as a batch of one: a single-text call drops an
    empty pair (`if text_pair`), a batch keeps it, as `tokenizers` and tsrunner do."""
    pairs = None if pair is None else [pair]
    return tokenizer([text], pairs, truncation=True, max_length=MAX_LENGTH, **options)


def _softmax(logits) -> list[float]:
    import torch

    return torch.softmax(logits.double(), -1).tolist()


def reference_answer(
    model, tokenizer, question, context, max_answer_len, max_seq_len=32, doc_stride=None
):
    """Transformers 4's QuestionAnsweringPipeline, which Transformers 5 dropped: the context cut
    into windows (truncation="only_second", doc_stride = min(max_seq_len // 2, 128), overflowing
    tokens), per window its p_mask (question and special tokens out, [CLS] in), the span search
    Transformers still ships (select_starts_ends, used by document-question-answering) and its
    align_to_words; the best-scored answer of all windows, the first on a tie."""
    import numpy as np
    import torch
    from transformers.pipelines.document_question_answering import select_starts_ends

    encoded = tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=max_seq_len,
        stride=min(max_seq_len // 2, 128) if doc_stride is None else doc_stride,
        return_overflowing_tokens=True,
        padding="longest",
        return_tensors="pt",
    )
    with torch.no_grad():
        outputs = model(**_model_inputs(model, encoded))
    answers = []
    min_null_score = 1000000
    for window, enc in enumerate(encoded.encodings):
        p_mask = np.array([[sid != 1 for sid in enc.sequence_ids]], dtype=np.int64)
        p_mask[0, np.array(enc.ids) == tokenizer.cls_token_id] = 0
        starts, ends, scores, min_null_score = select_starts_ends(
            outputs.start_logits[window : window + 1].numpy(),
            outputs.end_logits[window : window + 1].numpy(),
            p_mask,
            encoded["attention_mask"][window : window + 1].numpy(),
            min_null_score,
            max_answer_len=max_answer_len,
        )
        s, e = int(starts[0]), int(ends[0])
        start = enc.word_to_chars(enc.token_to_word(s), sequence_index=1)[0]
        end = enc.word_to_chars(enc.token_to_word(e), sequence_index=1)[1]
        answers.append(
            {"start": start, "end": end, "answer": context[start:end], "score": float(scores[0])}
        )
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)[0]


def _expected(task: str, model, tokenizer, inputs: list[tuple[str, str | None]]) -> list:
    """The reference answers for `inputs` (text, pair) in predict's JSON form."""
    import torch
    import transformers

    expected = []
    if task == "token-classification":
        pipe = transformers.pipeline(task, model=model, tokenizer=tokenizer, device="cpu")
        for text, _ in inputs:
            entities = pipe(text, aggregation_strategy="simple")
            expected.append(
                {
                    "entities": [
                        {
                            "entity_group": e["entity_group"],
                            "score": float(e["score"]),
                            "word": e["word"],
                            "start": e["start"],
                            "end": e["end"],
                        }
                        for e in entities
                    ]
                }
            )
        return expected
    for text, pair in inputs:
        if task == "question-answering":
            want = reference_answer(
                model, tokenizer, text, pair, 15, max_seq_len=MAX_LENGTH, doc_stride=DOC_STRIDE
            )
            expected.append(
                {
                    "answer": {
                        "text": want["answer"],
                        "score": want["score"],
                        "start": want["start"],
                        "end": want["end"],
                    }
                }
            )
            continue
        encoded = _encode(tokenizer, text, pair, return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**_model_inputs(model, encoded))
        if task == "feature-extraction":
            hidden = outputs.last_hidden_state[0]
            expected.append({"embedding": hidden.mean(0).tolist()})
        elif task == "text-classification":
            probs = _softmax(outputs.logits[0])
            labels = [{"label": model.config.id2label[i], "score": p} for i, p in enumerate(probs)]
            expected.append({"labels": sorted(labels, key=lambda x: -x["score"])})
        elif task == "fill-mask":
            ids = encoded["input_ids"][0].tolist()
            masks = []
            for position, token in enumerate(ids):
                if token != tokenizer.mask_token_id:
                    continue
                probs = torch.softmax(outputs.logits[0, position].double(), -1)
                top = torch.topk(probs, 5)
                candidates = [
                    {"token": int(i), "token_str": tokenizer.decode([int(i)]), "score": float(p)}
                    for p, i in zip(top.values, top.indices, strict=True)
                ]
                masks.append({"position": position, "candidates": candidates})
            expected.append({"masks": masks})
    return expected


def _inputs(task: str, tokenizer) -> list[tuple[str, str | None]]:
    if task == "question-answering":
        return list(QUESTIONS)
    if task == "fill-mask":
        return [(text.replace(MASK, tokenizer.mask_token), None) for text in MASKED]
    inputs = [(text, None) for text in TEXTS]
    if task == "text-classification":
        inputs += list(zip(TEXTS, PAIRS, strict=True))
    return inputs


def _multiple_choice(path: Path, runner, model, tokenizer) -> None:
    """The choices' softmax of the eager model, through tsrun --text PROMPT --text-pair
    CHOICE..., tsrun --input ({"text", "choices"} lines) and Runner.predict(choices=)."""
    import torch

    questions = [(TEXTS[0], PAIRS[:3]), (TEXTS[1], PAIRS[1:3]), (TEXTS[3], PAIRS[:2])]
    prompt, choices = questions[0]
    args = [_tsrun(), str(path), "--text", prompt, "--threads", "1"]
    for choice in choices:
        args += ["--text-pair", choice]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"tsrun multiple-choice failed: {run.stderr.strip()}"
    by_text = json.loads(run.stdout)
    by_lines = _tsrun_lines(path, [{"text": p, "choices": c} for p, c in questions], [])
    by_runner = runner.predict([p for p, _ in questions], choices=[c for _, c in questions])
    for i, (prompt, choices) in enumerate(questions):
        encoded = tokenizer(
            [prompt] * len(choices),
            choices,
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            inputs = _model_inputs(model, encoded)
            logits = model(**{k: v.unsqueeze(0) for k, v in inputs.items()})
        probs = _softmax(logits.logits[0])
        answers = [by_lines[i], by_runner[i]] + ([by_text] if i == 0 else [])
        for got in answers:
            assert [c["choice"] for c in got["choices"]] == list(choices)
            _assert_close(
                [c["score"] for c in got["choices"]], probs, f"multiple-choice {prompt!r} {choices}"
            )


def check(directory: Path, path: Path, task: str) -> str:
    """Runs the export at `path` (made from the model in `directory`) from text; the support
    matrix's answer. AssertionError when the export runs from text but answers differently."""
    import torch
    import transformers

    import tsrunner
    from tsrunner.tasks import TASKS

    runner = tsrunner.Runner(path, threads=1)
    if "image" in runner.manifest:
        return "no: the input is an image"
    try:
        runner.tokenizer  # noqa: B018 (loads it: an export without a tokenizer fails here)
    except RuntimeError as error:
        return f"no: {str(error).splitlines()[0]}"
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.model_max_length = MAX_LENGTH
    model_class = getattr(transformers, TASKS[task].auto_class)
    model = model_class.from_pretrained(directory).eval()
    if task == "feature-extraction" and getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    if task == "multiple-choice":
        _multiple_choice(path, runner, model, tokenizer)
        return "yes"
    if task not in TEXT_TASKS:
        try:
            runner.predict(["probe"])
        except RuntimeError as error:  # the reason, without the advice after it
            return f"no: {str(error).splitlines()[0].split(';')[0]}"
        raise AssertionError(f"{task} runs from text now: compare it with the eager model here")
    inputs = _inputs(task, tokenizer)
    # Tiny random models answer almost alike for any text: the encodings themselves must agree.
    for text, pair in inputs:
        if task == "question-answering":
            continue  # windows of a pair: compared through the answers' spans
        want = _encode(tokenizer, text, pair).encodings[0]
        _assert_close(
            tokenizer_fixtures.encoding_fields(runner.tokenizer.encode(text, pair)),
            tokenizer_fixtures.encoding_fields(want),
            f"encoding of {text!r}" + (f" / {pair!r}" if pair is not None else ""),
        )
    torch.manual_seed(0)
    expected = _expected(task, model, tokenizer, inputs)
    options = {"doc_stride": DOC_STRIDE} if task == "question-answering" else {}
    singles = [text for text, pair in inputs if pair is None]
    pairs = [(text, pair) for text, pair in inputs if pair is not None]
    predicted = runner.predict(singles, **options) if singles else []
    if pairs:
        predicted += runner.predict([t for t, _ in pairs], [p for _, p in pairs], **options)
    lines = [{"text": t} if p is None else {"text": t, "text_pair": p} for t, p in inputs]
    from_tsrun = _tsrun_lines(path, lines, ["--doc-stride", str(DOC_STRIDE)] if options else [])
    for (text, pair), want, got, tsrun_got in zip(
        inputs, expected, predicted, from_tsrun, strict=True
    ):
        where = f"{task} {text!r}" + (f" / {pair!r}" if pair is not None else "")
        got = {key: got[key] for key in want}
        _assert_close(got, want, f"predict {where}")
        _assert_close({key: tsrun_got[key] for key in want}, got, f"tsrun {where}")
    return "yes"
