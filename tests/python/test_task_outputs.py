"""Task-aware predict (text-classification, fill-mask, token-classification, question-answering)
against Transformers' own pipelines (question-answering: Transformers 4's pipeline algorithm,
since 5 dropped that pipeline), on tiny random BERTs that share MiniLM's tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import pytest
from from_text import reference_answer

import tsrunner
from archive_tools import resave
from tsrunner import sample_text

NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
SENTIMENT = {0: "negative", 1: "neutral", 2: "positive"}
TEXTS = [
    "Jim Henson was a puppeteer from New York.",
    "Angela Merkel met Barack Obama in Berlin and New York last week, said Reuters.",
    "The café in Zürich serves crêpes, isn't it unbelievable?",
    "中文 text with a 🙂 and unknownwordpiecesareheresomehow",
    "",
]
CLASSES = {
    "text-classification": ("BertForSequenceClassification", SENTIMENT),
    "fill-mask": ("BertForMaskedLM", None),
    "token-classification": ("BertForTokenClassification", NER_LABELS),
    "question-answering": ("BertForQuestionAnswering", None),
}


def _make_model(directory, task, minilm_dir, positions=64):
    import torch
    import transformers

    class_name, labels = CLASSES[task]
    torch.manual_seed(7)
    extra = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}} if labels else {}
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=positions,
        pad_token_id=0,
        # wide weights: logits spread out, so rankings do not hinge on float rounding
        initializer_range=0.5,
        **extra,
    )
    model = getattr(transformers, class_name)(config).eval()
    if task == "token-classification":  # favour I- tags, so that groups of several tokens form
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 2.0, 0.0, 2.0]))
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, directory / name)
    return directory


@pytest.fixture(scope="session")
def task_models(tmp_path_factory, minilm_dir):
    """task -> (model directory, export path), exported once per session."""
    root = tmp_path_factory.mktemp("task_models")
    models = {}
    for task in CLASSES:
        directory = _make_model(root / task, task, minilm_dir)
        path = root / f"{task}.pt"
        tsrunner.export(directory, path, task=task, max_length=32)
        models[task] = (directory, path)
    return models


def _hf_pipeline(task_models, task):
    import transformers

    directory = str(task_models[task][0])
    return transformers.pipeline(task, model=directory, tokenizer=directory, device="cpu")


def _runner(task_models, task):
    return tsrunner.Runner(task_models[task][1], threads=1)


def test_text_classification_matches_transformers(task_models):
    expected = _hf_pipeline(task_models, "text-classification")(TEXTS, top_k=None)
    actual = _runner(task_models, "text-classification").predict(TEXTS)
    for want, got in zip(expected, actual, strict=True):
        assert [x["label"] for x in got["labels"]] == [x["label"] for x in want]
        for w, g in zip(want, got["labels"], strict=True):
            assert g["score"] == pytest.approx(w["score"], abs=1e-4)
    top1 = _runner(task_models, "text-classification").predict(TEXTS, top_k=1)
    assert [r["labels"] for r in top1] == [r["labels"][:1] for r in actual]


def test_task_options_travel_with_each_call(task_models):
    # One runner, calls with different options interleaved from several threads: each gets the
    # answer of a runner asked only with its own options (issue 23: nothing keyed on options
    # is cached per pipeline).
    runner = _runner(task_models, "fill-mask")
    texts = ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK] today."]
    expected = {k: _runner(task_models, "fill-mask").predict(texts, top_k=k) for k in (1, 3, 7)}
    answers: dict[int, list] = {}

    def ask(k):
        answers[k] = [runner.predict(texts, top_k=k) for _ in range(3)]

    threads = [threading.Thread(target=ask, args=(k,)) for k in (1, 3, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, want in expected.items():
        assert all(got == want for got in answers[k]), k
        assert [len(r["masks"]) for r in want] == [1, 2]
        assert all(len(mask["candidates"]) == k for r in want for mask in r["masks"])


def test_fill_mask_matches_transformers(task_models):
    pipe = _hf_pipeline(task_models, "fill-mask")
    texts = ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK] today."]
    actual = _runner(task_models, "fill-mask").predict(texts, top_k=4)
    for text, got in zip(texts, actual, strict=True):
        want = pipe(text, top_k=4)
        want = [want] if isinstance(want[0], dict) else want  # one list per mask
        assert len(got["masks"]) == len(want) == text.count("[MASK]")
        for want_mask, got_mask in zip(want, got["masks"], strict=True):
            assert [c["token"] for c in got_mask["candidates"]] == [c["token"] for c in want_mask]
            for w, g in zip(want_mask, got_mask["candidates"], strict=True):
                assert g["score"] == pytest.approx(w["score"], abs=1e-4)
                assert g["token_str"] == pipe.tokenizer.convert_ids_to_tokens(w["token"])
    default = _runner(task_models, "fill-mask").predict(texts[0])
    assert len(default[0]["masks"][0]["candidates"]) == 5
    assert default[0]["masks"][0]["position"] == 4  # [CLS] paris is the [MASK]
    assert _runner(task_models, "fill-mask").predict("no mask here")[0]["masks"] == []


def _assert_entities_equal(want, got):
    assert [e["entity_group"] for e in got] == [e["entity_group"] for e in want]
    assert [(e["start"], e["end"]) for e in got] == [(e["start"], e["end"]) for e in want]
    assert [e["word"] for e in got] == [e["word"] for e in want]
    for w, g in zip(want, got, strict=True):
        assert g["score"] == pytest.approx(float(w["score"]), abs=1e-4)


def test_token_classification_matches_transformers(task_models):
    pipe = _hf_pipeline(task_models, "token-classification")
    actual = _runner(task_models, "token-classification").predict(TEXTS)
    groups = multi_word = 0
    for text, got in zip(TEXTS, actual, strict=True):
        want = pipe(text, aggregation_strategy="simple")
        _assert_entities_equal(want, got["entities"])
        for entity in got["entities"]:
            assert entity["entity_group"] in {"PER", "LOC"}
            assert entity["end"] > entity["start"]
        groups += len(want)
        multi_word += sum(" " in entity["word"] for entity in want)
    assert groups >= 4 and multi_word >= 1  # enough tags to exercise grouping and merging


QA = [
    ("Who was Jim Henson?", "Jim Henson was a nice puppeteer from New York City."),
    ("Where is the café?", "The café is in Zürich, next to the unbelievably old station."),
    ("What?", "中文 text 🙂 here"),
]


def test_question_answering_matches_transformers(task_models):
    import transformers

    directory = task_models["question-answering"][0]
    model = transformers.BertForQuestionAnswering.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    questions, contexts = zip(*QA, strict=True)
    for max_len in (15, 3):
        actual = _runner(task_models, "question-answering").predict(
            list(questions), list(contexts), max_answer_length=max_len
        )
        for (question, context), got in zip(QA, actual, strict=True):
            want = reference_answer(model, tokenizer, question, context, max_len)
            answer = got["answer"]
            assert (answer["start"], answer["end"], answer["text"]) == (
                want["start"],
                want["end"],
                want["answer"],
            )
            assert answer["text"] == context[answer["start"] : answer["end"]]
            assert answer["score"] == pytest.approx(want["score"], abs=1e-4)


def _assert_same_answers(got, want):
    answer = got["answer"]
    assert (answer["start"], answer["end"], answer["text"]) == (
        want["start"],
        want["end"],
        want["answer"],
    )
    assert answer["score"] == pytest.approx(want["score"], abs=1e-4)


def test_long_contexts_are_cut_into_windows_like_transformers(task_models):
    """Contexts of 2-6 times the export's 32 tokens: every window is run and the best answer
    wins, as in Transformers' pipeline (doc_stride 16 = min(32 // 2, 128), or the one given)."""
    import transformers

    directory = task_models["question-answering"][0]
    model = transformers.BertForQuestionAnswering.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    contexts = [" ".join(sample_text.sample(n, offset=40 * n)) for n in (3, 5, 8)]
    questions = ["Which module parses command lines?", "What?", "Where is the café in Zürich?"]
    runner = _runner(task_models, "question-answering")
    in_later_windows = 0
    for question, context, got in zip(
        questions, contexts, runner.predict(questions, contexts), strict=True
    ):
        _assert_same_answers(got, reference_answer(model, tokenizer, question, context, 15))
        first_window = tokenizer(question, context, truncation="only_second", max_length=32)
        in_later_windows += got["answer"]["end"] > first_window.encodings[0].offsets[-2][1]
    assert in_later_windows > 0  # some answers lie past the first window: the windows matter
    for stride in (0, 5):  # other windows, other softmaxes: the stride must reach the tokenizer
        answers = runner.predict(questions, contexts, doc_stride=stride)
        for question, context, got in zip(questions, contexts, answers, strict=True):
            want = reference_answer(model, tokenizer, question, context, 15, doc_stride=stride)
            _assert_same_answers(got, want)


def test_windows_are_at_most_384_tokens_like_transformers(tmp_path, minilm_dir):
    """An export longer than 384 tokens still cuts contexts into Transformers' 384-token
    windows (doc_stride 128), so that the answers match its pipeline."""
    import transformers

    directory = _make_model(tmp_path / "qa512", "question-answering", minilm_dir, positions=512)
    path = tmp_path / "qa512.pt"
    tsrunner.export(directory, path, task="question-answering", max_length=512)
    model = transformers.BertForQuestionAnswering.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    question, context = "What is it?", " ".join(sample_text.sample(40, offset=3))
    length = len(tokenizer(question, context)["input_ids"])
    assert length > 384, length  # so 384-token windows differ from the export's 512
    got = tsrunner.Runner(path).predict(question, context)[0]
    _assert_same_answers(got, reference_answer(model, tokenizer, question, context, 15, 384))


def test_tsrun_windows_long_contexts_like_python(task_models, tsrun):
    qa = task_models["question-answering"][1]
    runner = _runner(task_models, "question-answering")
    question, context = "What?", " ".join(sample_text.sample(6, offset=11))
    short = ("Who was Jim Henson?", "Jim Henson was a puppeteer.")
    lines = "".join(
        json.dumps({"text": q, "text_pair": c}) + "\n" for q, c in [(question, context), short]
    )
    for stride in (None, 4):
        extra = [] if stride is None else ["--doc-stride", str(stride)]
        batch = subprocess.run(
            [tsrun, str(qa), "--input", "-", *extra], input=lines, capture_output=True, text=True
        )
        assert batch.returncode == 0, batch.stderr
        text = subprocess.run(
            [tsrun, str(qa), "--text", question, "--text-pair", context, *extra],
            capture_output=True,
            text=True,
        )
        assert text.returncode == 0, text.stderr
        want = runner.predict([question, short[0]], [context, short[1]], doc_stride=stride)
        got = [json.loads(line)["answer"] for line in batch.stdout.splitlines()]
        got.insert(1, json.loads(text.stdout)["answer"])
        for answer, expected in zip(got, [want[0], want[0], want[1]], strict=True):
            expected = expected["answer"]
            assert (answer["start"], answer["end"], answer["text"]) == (
                expected["start"],
                expected["end"],
                expected["text"],
            )
    # A question that leaves no room for its context: the line is answered with an error.
    result = subprocess.run(
        [tsrun, str(qa), "--input", "-"],
        input=json.dumps({"text": "word " * 40, "text_pair": "context"}) + "\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "none are left for its pair" in result.stderr


def test_tsrun_text_and_batch_give_the_same_answers(task_models, tsrun, tmp_path):
    path = task_models["token-classification"][1]
    python = _runner(task_models, "token-classification").predict(TEXTS)
    args = [arg for text in TEXTS for arg in ("--text", text)]
    result = subprocess.run([tsrun, str(path), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text_mode = [json.loads(line) for line in result.stdout.splitlines()]
    lines = "".join(json.dumps({"text": text}) + "\n" for text in TEXTS)
    result = subprocess.run(
        [tsrun, str(path), "--input", "-", "--batch-size", "2"],
        input=lines,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    batch_mode = [json.loads(line) for line in result.stdout.splitlines()]
    for a, b, c in zip(python, text_mode, batch_mode, strict=True):
        _assert_entities_equal(a["entities"], b["entities"])
        _assert_entities_equal(a["entities"], c["entities"])

    qa = task_models["question-answering"][1]
    question, context = QA[1]
    result = subprocess.run(
        [tsrun, str(qa), "--text", question, "--text-pair", context],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    want = _runner(task_models, "question-answering").predict(question, context)[0]["answer"]
    got = json.loads(result.stdout)["answer"]
    assert (got["text"], got["start"], got["end"]) == (want["text"], want["start"], want["end"])

    classifier = task_models["text-classification"][1]
    result = subprocess.run(
        [tsrun, str(classifier), "--text", TEXTS[0], "--top-k", "2"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    want = _runner(task_models, "text-classification").predict(TEXTS[0], top_k=2)[0]["labels"]
    got = json.loads(result.stdout)["labels"]
    assert [x["label"] for x in got] == [x["label"] for x in want]
    assert [x["score"] for x in got] == pytest.approx([x["score"] for x in want], abs=1e-6)

    result = subprocess.run(
        [tsrun, str(classifier), "--text", TEXTS[0], "--top-k", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--top-k" in result.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": "3"}, "top_k"),
        ({"max_answer_length": 0}, "max_answer"),
        ({"doc_stride": -1}, "doc_stride"),
    ],
)
def test_bad_options_are_refused(task_models, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _runner(task_models, "question-answering").predict("q", "c", **kwargs)


def _tsrun_lines(tsrun, path, lines: str, *extra: str) -> list:
    result = subprocess.run(
        [tsrun, str(path), "--input", "-", *extra], input=lines, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_tsrun_and_runner_predict_give_the_same_json_for_every_task(
    task_models, tiny_bert_pt, tsrun
):
    """One conversion (prediction_json.h) for both: equal keys and equal numbers, not close."""
    exports = {task: path for task, (_, path) in task_models.items()}
    exports["feature-extraction"] = tiny_bert_pt
    for task, path in exports.items():
        runner = tsrunner.Runner(path, threads=1)
        if task == "question-answering":
            texts, pairs = [q for q, _ in QA], [c for _, c in QA]
        else:
            texts = [text.replace("New York", "[MASK] York") for text in TEXTS]
            pairs = None
        rows = [
            {"text": t} if pairs is None else {"text": t, "text_pair": p}
            for t, p in zip(texts, pairs or texts, strict=True)
        ]
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        want = runner.predict(texts, pairs, top_k=3)
        assert _tsrun_lines(tsrun, path, lines, "--top-k", "3", "--threads", "1") == want, task
        assert all(want), task  # every task answered something


def test_question_answering_reads_outputs_in_manifest_order_when_named_otherwise(
    task_models, tmp_path
):
    def rename_outputs(texts: dict[str, str]) -> dict[str, str]:
        manifest = json.loads(texts["tsrunner/manifest.json"])
        for spec, name in zip(manifest["outputs"], ["span_start", "span_end"], strict=True):
            spec["name"] = name
        return {**texts, "tsrunner/manifest.json": json.dumps(manifest)}

    renamed = tmp_path / "qa_renamed.pt"
    resave(task_models["question-answering"][1], renamed, edit_files=rename_outputs)
    questions, contexts = [q for q, _ in QA], [c for _, c in QA]
    runner = tsrunner.Runner(renamed, threads=1)
    assert runner.output_names == ["span_start", "span_end"]
    want = _runner(task_models, "question-answering").predict(questions, contexts)
    assert runner.predict(questions, contexts) == want


def test_a_model_output_of_another_shape_is_refused_not_misread(task_models, tmp_path):
    # A manifest that calls token vectors [batch, sequence, hidden] a classifier's logits: the
    # task code reads outputs through raw pointers, so the shape is checked first (issue 28).
    def call_it_a_classifier(texts: dict[str, str]) -> dict[str, str]:
        manifest = json.loads(texts["tsrunner/manifest.json"])
        manifest["task"] = "text-classification"
        return {**texts, "tsrunner/manifest.json": json.dumps(manifest)}

    relabelled = tmp_path / "relabelled.pt"
    resave(task_models["fill-mask"][1], relabelled, edit_files=call_it_a_classifier)
    runner = tsrunner.Runner(relabelled, threads=1)
    with pytest.raises(tsrunner.Error, match=r"output has shape \[\d+, \d+, \d+\], expected 2 dim"):
        runner.predict(["one text", "and another"])
