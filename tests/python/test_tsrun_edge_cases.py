"""tsrun on what a new user tries first: bracketed texts, odd numbers, JSON lines with ids and
blank lines, paths that cannot work, exports without a usable tokenizer, encoder-decoders, int8."""

from __future__ import annotations

import json
import re
import subprocess

import make_fixtures
import pytest
import tiny_models
import torch

import tsrunner
from serve_process import Server, environment_without_api_key


def _tsrun(tsrun, *args, stdin=None, cwd=None):
    return subprocess.run(
        [tsrun, *map(str, args)], capture_output=True, text=True, input=stdin, cwd=cwd
    )


def _one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tsrun: error: ")
    for needle in needles:
        assert needle in lines[0]
    allowed = lines[0].rsplit(" is not ", 1)[-1]  # the range, after the value as typed
    assert not re.search(r"\d{12}", allowed), lines[0]  # no 300-digit "maximum"
    assert result.stdout == ""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Tiny exports this file needs beyond conftest's: fill-mask with a tokenizer, RoBERTa
    without one, T5 (encoder-decoder), multiple-choice."""
    work = tmp_path_factory.mktemp("edge_cases")
    tokenizer = make_fixtures.minilm_directory()
    paths = {}
    for name, family, task in [
        ("fill_mask", "BERT", "fill-mask"),
        ("no_tokenizer", "RoBERTa", "text-classification"),
        ("t5", "T5", "text2text"),
        ("multiple_choice", "BERT", "multiple-choice"),
    ]:
        model = tiny_models.make_model(family, task, work / name, tokenizer_source=tokenizer)
        paths[name] = work / f"{name}.pt"
        tsrunner.export(model, paths[name], task=task, max_length=32)
    return paths


# ---- texts arrive as typed ---------------------------------------------------------------------


def test_bracketed_texts_are_one_text_each(tsrun, tiny_bert_pt):
    texts = ["[1,2,3]", "[Jim Henson]", "[a, b] and [c]"]
    args = [arg for text in texts for arg in ("--text", text)]
    result = _tsrun(tsrun, tiny_bert_pt, *args, "--threads", 1)
    assert result.returncode == 0, result.stderr
    native = [json.loads(line)["embedding"] for line in result.stdout.splitlines()]
    expected = tsrunner.Runner(tiny_bert_pt, threads=1).predict(texts)
    assert len(native) == 3
    for got, want in zip(native, expected, strict=True):
        assert torch.allclose(torch.tensor(got), torch.tensor(want["embedding"]), atol=1e-6)


def test_bracketed_pairs_and_masks_survive(tsrun, exports):
    result = _tsrun(tsrun, exports["fill_mask"], "--text", "[MASK] and [MASK]", "--top-k", 2)
    assert result.returncode == 0, result.stderr
    (answer,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [mask["position"] for mask in answer["masks"]] == [1, 3]  # [CLS] [MASK] and [MASK]

    pair = _tsrun(tsrun, exports["fill_mask"], "--text", "[MASK]", "--text-pair", "[x,y]")
    assert pair.returncode == 0, pair.stderr
    assert len(pair.stdout.splitlines()) == 1


# ---- numbers out of range: one line, the allowed range in words -------------------------------


@pytest.mark.parametrize("threads", ["20000", "100000", "-1"])
def test_absurd_thread_counts_are_refused(tsrun, tiny_bert_pt, threads):
    result = _tsrun(tsrun, tiny_bert_pt, "--text", "hi", "--threads", threads)
    _one_line_error(result, "--threads", f'"{threads}" is not an integer from 0 to 1024')
    bench = _tsrun(tsrun, "bench", tiny_bert_pt, "--batch", 1, "--seq", 4, "--threads", threads)
    _one_line_error(bench, "--threads", "from 0 to 1024")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["bench", "{model}", "--batch", "0", "--seq", "4"], ['--batch: "0" is not an integer']),
        (["bench", "{model}", "--batch", "1", "--seq", "1e400"], ["--seq", "from 1 to 1048576"]),
        (["bench", "{model}", "--batch", "1", "--seq", "4", "--duration", "-1"], ["seconds"]),
        (["{model}", "--input", "-", "--batch-size", "0"], ["from 1 to 65536"]),
        (["{model}", "--text", "a", "--top-k", "-5"], ["--top-k", "from 1 to"]),
        (["{model}", "--text", "a", "--top-k", "99999999999999999999999"], ["--top-k"]),
    ],
)
def test_range_errors_name_the_range(tsrun, tiny_bert_pt, args, needles):
    result = _tsrun(tsrun, *[a.format(model=tiny_bert_pt) for a in args], stdin="")
    _one_line_error(result, *needles)


# ---- JSON lines: blank lines, ids, paths --------------------------------------------------------


def test_blank_lines_are_skipped_and_ids_come_back(tsrun, tiny_bert_pt):
    lines = [
        json.dumps({"id": "first", "text": "hello there"}),
        "",
        "   ",
        json.dumps({"id": 7, "input_ids": [101, 7592, 102]}),
        json.dumps({"text": "no id"}),
        json.dumps({"id": {"doc": 3}, "text": 42}),  # a bad line keeps its id too
        "",
    ]
    result = _tsrun(tsrun, tiny_bert_pt, "--input", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2  # the bad line
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 4
    assert answers[0]["id"] == "first" and len(answers[0]["embedding"]) == 32
    assert answers[1]["id"] == 7 and len(answers[1]["embedding"]) == 32
    assert "id" not in answers[2] and len(answers[2]["embedding"]) == 32
    assert answers[3] == {"id": {"doc": 3}, "line": 6, "error": '"text" must be a string'}
    assert result.stdout.splitlines()[0].startswith('{"id":"first",')
    assert "1 bad input line(s)" in result.stderr

    clean = _tsrun(tsrun, tiny_bert_pt, "--input", "-", stdin=lines[0] + "\n\n")
    assert clean.returncode == 0 and clean.stderr == ""


def test_output_is_honoured_in_text_mode(tsrun, tiny_bert_pt, tmp_path):
    target = tmp_path / "out.jsonl"
    result = _tsrun(tsrun, tiny_bert_pt, "--text", "a", "--text", "b", "--output", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert len(target.read_text().splitlines()) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary left


def test_output_without_text_or_input_is_refused(tsrun, tiny_bert_pt, tmp_path):
    result = _tsrun(tsrun, tiny_bert_pt, "--ids", "101,102", "--raw", "--output", tmp_path / "x")
    _one_line_error(result, "--output needs --text or --input")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--text", "a", "--output", "{dir}"], ["--output", "is a directory"]),
        (["--input", "-", "--output", "{dir}"], ["--output", "is a directory"]),
        (["--input", "-", "--output", "{dir}/missing/out.jsonl"], ["does not exist"]),
        (["--input", "{dir}"], ["--input", "is a directory"]),
    ],
)
def test_unusable_paths_are_refused_before_the_model_loads(tsrun, tmp_path, args, needles):
    # A model that cannot load: the path error must come first, before any work.
    model = tmp_path / "missing.pt"
    result = _tsrun(tsrun, model, *[a.format(dir=tmp_path) for a in args], stdin="")
    _one_line_error(result, *needles)


# ---- token ids never need the tokenizer ---------------------------------------------------------


def test_input_ids_run_without_a_usable_tokenizer(tsrun, exports):
    model = exports["no_tokenizer"]
    assert tsrunner.read_manifest(model)["tokenizer"] is None
    lines = [
        json.dumps({"id": "a", "input_ids": [0, 5, 6, 7, 2]}),
        json.dumps({"id": "b", "input_ids": [0, 9, 2]}),
        json.dumps({"id": "c", "text": "words need a tokenizer"}),
    ]
    result = _tsrun(tsrun, model, "--input", "-", "--threads", 1, stdin="\n".join(lines))
    assert result.returncode == 2  # the text line only
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert answers[2]["id"] == "c" and "cannot tokenize" in answers[2]["error"]
    # Both id lines ran in one padded batch: padding with RoBERTa's pad id (1) and a mask
    # gives the unpadded answer.
    runner = tsrunner.Runner(model, threads=1)
    labels = runner.manifest["labels"]
    for answer, ids in zip(answers[:2], ([0, 5, 6, 7, 2], [0, 9, 2]), strict=True):
        logits = runner.run({"input_ids": torch.tensor([ids])})["logits"][0]
        expected = dict(zip(labels, logits.softmax(-1).tolist(), strict=True))
        got = {entry["label"]: entry["score"] for entry in answer["labels"]}
        assert got == pytest.approx(expected, abs=1e-5)


# ---- encoder-decoders (T5, BART) ----------------------------------------------------------------


def test_decoder_ids_run_an_encoder_decoder(tsrun, exports):
    model = exports["t5"]
    result = _tsrun(
        tsrun, model, "--ids", "13,8,1", "--ids", "21,1", "--decoder-ids", "0,17", "--raw"
    )
    assert result.returncode == 0, result.stderr
    logits = json.loads(result.stdout)["logits"]
    assert logits["shape"] == [2, 2, tiny_models.SMALL_VOCAB]
    expected = tsrunner.Runner(model).run(
        {
            "input_ids": torch.tensor([[13, 8, 1], [21, 1, 0]]),
            "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
            "decoder_input_ids": torch.tensor([[0, 17], [0, 17]]),
        }
    )["logits"]
    got = torch.tensor(logits["data"], dtype=torch.float64).to(torch.float32).view(2, 2, -1)
    assert torch.allclose(got, expected, atol=1e-5)

    default = _tsrun(tsrun, model, "--ids", "13,8,1", "--raw")  # the decoder start token alone
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["logits"]["shape"] == [1, 1, tiny_models.SMALL_VOCAB]


def test_decoder_ids_usage_errors(tsrun, exports, tiny_bert_pt):
    three = _tsrun(
        tsrun, exports["t5"], "--ids", "1", "--ids", "2", "--ids", "3",
        "--decoder-ids", "0", "--decoder-ids", "0", "--raw",
    )  # fmt: skip
    _one_line_error(three, "one --decoder-ids for every --ids")
    encoder_only = _tsrun(tsrun, tiny_bert_pt, "--ids", "101", "--decoder-ids", "0", "--raw")
    _one_line_error(encoder_only, "no decoder_input_ids input")


def test_bench_sizes_decoder_inputs(tsrun, exports):
    args = ["--batch", 2, "--seq", 8, "--iterations", 2, "--warmup", 0, "--json"]
    result = _tsrun(tsrun, "bench", exports["t5"], *args, "--decoder-seq", 3)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sequence"] == 8 and report["decoder_sequence"] == 3
    assert report["iterations"] == 2
    default = _tsrun(tsrun, "bench", exports["t5"], *args)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["decoder_sequence"] == 8


# ---- multiple-choice from text -----------------------------------------------------------------


def test_multiple_choice_scores_each_choice_paired_with_the_text(tsrun, exports):
    model = exports["multiple_choice"]
    prompt, choices = "To dry wet clothes you", ["hang them in the sun", "put them [in] a freezer"]
    args = ["--text", prompt, "--text-pair", choices[0], "--text-pair", choices[1]]
    result = _tsrun(tsrun, model, *args, "--threads", 1)
    assert result.returncode == 0, result.stderr
    (answer,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [c["choice"] for c in answer["choices"]] == choices

    encodings = tsrunner.Tokenizer.from_file(model).encode_batch([prompt] * 2, choices)
    inputs = {
        name: torch.tensor([[getattr(e, field) for e in encodings]])
        for name, field in [
            ("input_ids", "ids"),
            ("attention_mask", "attention_mask"),
            ("token_type_ids", "type_ids"),
        ]
    }
    expected = tsrunner.Runner(model, threads=1).run(inputs)["logits"][0].softmax(-1)
    assert [c["score"] for c in answer["choices"]] == pytest.approx(expected.tolist(), abs=1e-6)
    assert answer["best"] == int(expected.argmax())

    one = _tsrun(tsrun, model, "--text", prompt, "--text-pair", choices[0])
    _one_line_error(one, "two or more --text-pair")


def _same_choices(answer, expected):
    assert [c["choice"] for c in answer["choices"]] == [c["choice"] for c in expected["choices"]]
    scores = [c["score"] for c in answer["choices"]]
    assert scores == pytest.approx([c["score"] for c in expected["choices"]], abs=1e-6)
    assert answer["best"] == expected["best"]


def test_multiple_choice_runs_through_every_front_end_alike(tsrun, exports):
    """The library scores multiple-choice questions (encoder: one encoding per choice;
    predictor: [questions, choices, length]); Runner.predict, tsrun --input and /predict all
    go through it and agree with running each question alone."""
    model = exports["multiple_choice"]
    questions = [
        ("To dry wet clothes you", ["hang them in the sun", "put them in a freezer"]),
        ("A cat is", ["an animal", "a rock", "a small domestic feline of many colours"]),
        ("Water boils at", ["100 degrees", "minus forty"]),
    ]
    texts = [q for q, _ in questions]
    choices = [c for _, c in questions]
    runner = tsrunner.Runner(model, threads=1)
    # One at a time, as the model computes it: [1, choices, length] of the tokenizer's encodings.
    tokenizer = tsrunner.Tokenizer.from_file(model)
    alone = []
    for text, options in questions:
        encodings = tokenizer.encode_batch([text] * len(options), options)
        inputs = {
            name: torch.tensor([[getattr(e, field) for e in encodings]])
            for name, field in [
                ("input_ids", "ids"),
                ("attention_mask", "attention_mask"),
                ("token_type_ids", "type_ids"),
            ]
        }
        alone.append(runner.run(inputs)["logits"][0].softmax(-1).tolist())

    # Three questions (two with 2 choices, one with 3) in one call: batched by choice count.
    together = runner.predict(texts, choices=choices)
    for answer, scores, options in zip(together, alone, choices, strict=True):
        assert [c["choice"] for c in answer["choices"]] == options
        assert [c["score"] for c in answer["choices"]] == pytest.approx(scores, abs=1e-5)
        assert answer["best"] == max(range(len(scores)), key=scores.__getitem__)
    single = runner.predict(texts[1], choices=choices[1])
    assert single[0]["choices"] == together[1]["choices"]

    lines = [json.dumps({"id": i, "text": t, "choices": c}) for i, (t, c) in enumerate(questions)]
    lines.append(json.dumps({"id": "one", "text": "x", "choices": ["only one"]}))
    batch = _tsrun(tsrun, model, "--input", "-", "--threads", 1, stdin="\n".join(lines))
    assert batch.returncode == 2  # the one bad line
    answers = [json.loads(line) for line in batch.stdout.splitlines()]
    for answer, expected in zip(answers[:3], together, strict=True):
        _same_choices(answer, expected)
    assert answers[3]["id"] == "one" and "two or more choices" in answers[3]["error"]

    with pytest.raises(ValueError, match="two or more choices"):
        runner.predict("x", choices=["only one"])
    with pytest.raises(ValueError, match="scores a text against its choices"):
        runner.predict("no choices given")
    with pytest.raises(ValueError, match="text_pairs or choices"):
        runner.predict(["a"], text_pairs=["b"], choices=[["c", "d"]])

    with Server(tsrun, [model], env=environment_without_api_key()) as server:
        status, body = server.post("/predict", {"inputs": texts[0], "choices": choices[0]})
        assert status == 200, body
        _same_choices(body, together[0])
        status, body = server.post("/predict", {"inputs": [[t] for t in texts], "choices": choices})
        assert status == 200, body
        assert [a["best"] for a in body] == [a["best"] for a in together]
        status, body = server.post("/predict", {"inputs": texts[0]})
        assert status == 422 and "choices" in body["error"]


# ---- int8 exports: quiet runs, and `info` says what it is ---------------------------------------


def test_int8_runs_print_no_deprecation_warning(tsrun, tiny_int8_pt):
    result = _tsrun(tsrun, tiny_int8_pt, "--text", "hello world", "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # tsrunner::linear_int8 calls no deprecated LibTorch API (the FBGEMM dynamic int8 export
    # before it did, and --debug showed the warning): quiet with --debug too.
    debug = _tsrun(tsrun, tiny_int8_pt, "--text", "hello world", "--threads", 1, "--debug")
    assert debug.returncode == 0 and "deprecated" not in debug.stderr
    bench = _tsrun(tsrun, "bench", tiny_int8_pt, "--batch", 1, "--seq", 4, "--iterations", 1)
    assert bench.returncode == 0 and "deprecated" not in bench.stderr


def test_info_shows_the_digest_and_int8(tsrun, tiny_int8_pt, tiny_bert_pt):
    info = _tsrun(tsrun, "info", tiny_int8_pt)
    assert info.returncode == 0, info.stderr
    digest = tsrunner.verify_archive(tiny_int8_pt)
    assert f"  sha256      {digest}\n" in info.stdout
    assert "  quantized   int8 (dynamic, torch.nn.Linear)\n" in info.stdout
    # The digest shown is the one --expect-sha256 takes.
    pinned = _tsrun(tsrun, tiny_int8_pt, "--text", "a", "--expect-sha256", digest)
    assert pinned.returncode == 0, pinned.stderr
    plain = _tsrun(tsrun, "info", tiny_bert_pt)
    assert "quantized" not in plain.stdout and "sha256" in plain.stdout
