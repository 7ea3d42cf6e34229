"""Generation exports (prefill + decode with an explicit KV cache) and the native generation loop,
checked against Transformers' own generate on tiny random GPT-2 and Llama decoders."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tsrunner
from serve_process import Server
from tsrunner import _core

DATA = Path(__file__).resolve().parents[1] / "data"
PROMPTS = [
    "The module provides",
    "Return a new list",
    "If the file does not exist, raise an error and",
    "A",
    "Convert the string to bytes with the given encoding",
]


def _tiny_decoders():
    spec = importlib.util.spec_from_file_location("tiny_decoders", DATA / "tiny_decoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def decoder(request, tmp_path_factory):
    """(model directory, export path, Runner) of one tiny decoder."""
    workdir = tmp_path_factory.mktemp(request.param)
    directory = _tiny_decoders().make_decoder(request.param, workdir / "model")
    path = workdir / "model.pt"
    report = tsrunner.export(directory, path, task="causal-lm")
    assert report.manifest["generation"]["validation"]
    return directory, path, tsrunner.Runner(path, threads=1)


def _hf(directory: Path):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _hf_generate(directory: Path, prompts: list[str], **params) -> list[list[int]]:
    """HF generate's new tokens per prompt, cut at the first EOS (which ends a sequence)."""
    model, tokenizer = _hf(directory)
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.generate(**batch, do_sample=False, **params)
    eos = model.generation_config.eos_token_id
    new_tokens = []
    for row in output[:, batch["input_ids"].shape[1] :].tolist():
        new_tokens.append(row[: row.index(eos)] if eos in row else row)
    return new_tokens


def test_manifest_records_generation(decoder):
    _, path, runner = decoder
    record = runner.manifest["generation"]
    assert record["methods"] == {"prefill": "prefill", "decode": "decode"}
    assert record["eos_token_ids"] == [0]
    # Not set by the model: HF's default (20 new tokens), not a max_length counting the prompt.
    assert record["defaults"]["max_length"] is None and record["defaults"]["do_sample"] is False
    assert record["num_layers"] == 2
    assert all(check["passed"] for check in record["validation"])
    text = tsrunner.manifest.describe(tsrunner.read_manifest(path))
    assert "generates" in text and "eos" in text


def test_kernel_path_reason_describes_one_model(decoder):
    """forward, prefill and decode each hold the model's layers: the reason gives forward's
    figures and each other method's own, not their sum."""
    _, _, runner = decoder
    reason = runner.kernel_path_reason
    forward = re.search(r"\): (\d+) GEMMs,", reason)
    prefill = re.search(r"; prefill: (\d+) GEMMs, (\d+) attentions", reason)
    decode = re.search(r"; decode: (\d+) GEMMs,", reason)
    assert forward and prefill and decode and "figures of forward" in reason, reason
    assert int(forward[1]) == int(prefill[1]) == int(decode[1]) > 0, reason


@pytest.mark.parametrize(
    "params",
    [
        {"max_new_tokens": 12},
        {"max_new_tokens": 10, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2},
        {"max_new_tokens": 6, "min_new_tokens": 6},
    ],
    ids=["plain", "penalties", "min-new-tokens"],
)
def test_greedy_equals_hf_generate(decoder, params):
    directory, _, runner = decoder
    expected = _hf_generate(directory, PROMPTS, **params)
    got = runner.generate(PROMPTS, details=True, **params)
    assert [result["token_ids"] for result in got] == expected
    for result, tokens in zip(got, expected, strict=True):
        limit = params["max_new_tokens"]
        assert result["finish_reason"] == ("length" if len(tokens) == limit else "stop")


def _front_ends_give(expected: list[list[int]], path: Path, tsrun: str, workdir: Path) -> None:
    """Greedy answers of 8 new tokens to PROMPTS through Runner.generate, tsrun --input (JSON
    lines) and tsrun serve's /v1/completions, all equal to `expected` (HF generate's tokens)."""
    runner = tsrunner.Runner(path, threads=1)
    got = runner.generate(PROMPTS, details=True, max_new_tokens=8)
    assert [result["token_ids"] for result in got] == expected
    lines = workdir / "prompts.jsonl"
    lines.write_text(
        "".join(json.dumps({"id": i, "text": p}) + "\n" for i, p in enumerate(PROMPTS))
    )
    done = subprocess.run(
        [tsrun, str(path), "--input", str(lines), "--output", "-", "--max-new-tokens", "8"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [answer["token_ids"] for answer in answers] == expected
    with Server(tsrun, [path], "--name", "gen") as server:
        status, answer = server.post("/v1/completions", {"prompt": PROMPTS, "max_tokens": 8})
        assert status == 200, answer
        choices = sorted(answer["choices"], key=lambda choice: choice["index"])
        assert [choice["text"] for choice in choices] == [result["text"] for result in got]


def test_front_ends_equal_hf_generate(decoder, tsrun, tmp_path):
    directory, path, _ = decoder
    _front_ends_give(_hf_generate(directory, PROMPTS, max_new_tokens=8), path, tsrun, tmp_path)


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_more_llama_style_families_equal_hf_generate(kind, tmp_path, tsrun):
    directory = _tiny_decoders().make_decoder(kind, tmp_path / "model")
    tsrunner.export(directory, tmp_path / "model.pt", task="causal-lm")
    expected = _hf_generate(directory, PROMPTS, max_new_tokens=8)
    _front_ends_give(expected, tmp_path / "model.pt", tsrun, tmp_path)


def test_continuous_batching_equals_one_batch(decoder):
    """Five prompts through two rows: sequences join as others leave, with the same tokens."""
    directory, _, runner = decoder
    expected = _hf_generate(directory, PROMPTS, max_new_tokens=9)
    narrow = _core.Generator(runner, max_batch=2)
    got = narrow.generate(PROMPTS, {"max_new_tokens": 9})
    assert [result["token_ids"] for result in got] == expected
    # Different budgets make sequences leave at different steps.
    budgets = [3, 11, 1, 7, 5]
    per_prompt = [
        runner.generate(prompt, details=True, max_new_tokens=n)["token_ids"]
        for prompt, n in zip(PROMPTS, budgets, strict=True)
    ]
    for prompt, n, alone in zip(PROMPTS, budgets, per_prompt, strict=True):
        assert alone == _hf_generate(directory, [prompt], max_new_tokens=n)[0]


def test_sampling_is_reproducible_and_independent_of_batch(decoder):
    _, _, runner = decoder
    sample = {"max_new_tokens": 12, "do_sample": True, "temperature": 1.3, "top_k": 0,
              "ignore_eos": True}  # fmt: skip
    alone = runner.generate(PROMPTS[0], details=True, seed=7, **sample)["token_ids"]
    assert runner.generate(PROMPTS[0], details=True, seed=7, **sample)["token_ids"] == alone
    in_company = runner.generate(PROMPTS, details=True, seed=7, **sample)
    assert in_company[0]["token_ids"] == alone
    narrow = _core.Generator(runner, max_batch=2)
    late = narrow.generate(PROMPTS[1:] + PROMPTS[:1], {"seed": 7, **sample})[-1]
    assert late["token_ids"] == alone  # joined a running batch, same draws
    others = {tuple(runner.generate(PROMPTS[0], details=True, seed=s, **sample)["token_ids"])
              for s in range(4)}  # fmt: skip
    assert len(others) > 1


def test_warpers_match_transformers():
    from transformers.generation import logits_process as hf

    scores = torch.log(torch.tensor([[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]]))
    cases = [
        ({"temperature": 0.7}, [hf.TemperatureLogitsWarper(0.7)]),
        ({"top_k": 3}, [hf.TopKLogitsWarper(3)]),
        ({"top_p": 0.8}, [hf.TopPLogitsWarper(0.8)]),
        ({"top_p": 0.5}, [hf.TopPLogitsWarper(0.5)]),
        ({"min_p": 0.3}, [hf.MinPLogitsWarper(0.3)]),
        (
            {"temperature": 0.5, "top_k": 4, "top_p": 0.9},
            [hf.TemperatureLogitsWarper(0.5), hf.TopKLogitsWarper(4), hf.TopPLogitsWarper(0.9)],
        ),
    ]
    for settings, warpers in cases:
        expected = scores.clone()
        for warper in warpers:
            expected = warper(None, expected)
        got = torch.tensor([_core._testing.warp_scores(scores[0].tolist(), **settings)])
        kept = torch.isfinite(expected)
        assert torch.equal(torch.isfinite(got), kept), settings
        torch.testing.assert_close(got[kept], expected[kept], msg=str(settings))
    # top_p 0.8 keeps the smallest set of most likely tokens reaching 0.8: 0.4+0.25+0.15.
    assert (
        torch.isfinite(
            torch.tensor(_core._testing.warp_scores(scores[0].tolist(), top_p=0.8))
        ).sum()
        == 3
    )


def test_stop_strings_end_before_the_match(decoder):
    _, _, runner = decoder
    full = runner.generate(PROMPTS[2], max_new_tokens=16, ignore_eos=True)
    assert len(full) > 6
    stop = full[3:6]  # starts mid-continuation, usually across a token boundary
    cut = full[: full.index(stop)]
    result = runner.generate(PROMPTS[2], details=True, max_new_tokens=16, stop=[stop, "\x00zz"])
    assert result["text"] == cut and result["finish_reason"] == "stop"
    pieces = list(runner.stream(PROMPTS[2], max_new_tokens=16, stop=[stop]))
    assert "".join(pieces) == cut
    assert all(stop not in piece for piece in pieces)


def test_stream_equals_generate(decoder):
    _, _, runner = decoder
    params = {"max_new_tokens": 14, "do_sample": True, "temperature": 0.9, "seed": 3}
    pieces = list(runner.generate(PROMPTS[1], stream=True, **params))
    assert "".join(pieces) == runner.generate(PROMPTS[1], **params)
    several = list(runner.stream(PROMPTS[:3], **params))
    texts = runner.generate(PROMPTS[:3], **params)
    for index, text in enumerate(texts):
        assert "".join(piece for i, piece in several if i == index) == text


def test_incremental_detokenizer_releases_whole_characters(decoder):
    """Characters the byte-level BPE splits into byte tokens are released whole; stop strings
    never show, even in part."""
    _, _, runner = decoder
    tokenizer = runner.tokenizer
    text = "naïve café 🙂 done — ok"
    ids = tokenizer.encode(text).ids
    assert len(ids) > len(text.split())  # several characters are split into byte tokens
    pieces = _core._testing.stream_pieces(tokenizer, ids)
    assert b"".join(pieces).decode() == tokenizer.decode(ids) == text
    for piece in pieces:
        piece.decode("utf-8")  # complete characters only: strict decoding succeeds
        assert "\ufffd" not in piece.decode()
    cut = _core._testing.stream_pieces(tokenizer, ids, ["🙂 do"])
    assert b"".join(cut).decode() == "naïve café "
    assert all("🙂".encode() not in piece for piece in cut)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": -1}, "temperature must be >= 0"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_k": -2}, "top_k must be >= 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 2, "min_new_tokens": 3}, "min_new_tokens (3) must not exceed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"beams": 2}, 'unknown generation parameter "beams"'),
    ],
)
def test_bad_parameters_are_refused(decoder, params, message):
    _, _, runner = decoder
    with pytest.raises(ValueError) as caught:
        runner.generate("hello", **params)
    assert message in str(caught.value)


def test_prompt_longer_than_context_is_refused(decoder):
    _, _, runner = decoder
    with pytest.raises(ValueError, match="context takes at most 63"):
        runner.generate([[5] * 64])
    result = runner.generate([5] * 60, details=True, max_new_tokens=50, ignore_eos=True)
    assert len(result["token_ids"]) == 4 and result["finish_reason"] == "length"


def test_tsrun_streams_and_answers_jsonl(decoder, tsrun, tmp_path):
    _, path, runner = decoder
    expected = runner.generate(PROMPTS[0], max_new_tokens=8)
    done = subprocess.run(
        [tsrun, str(path), "--text", PROMPTS[0], "--max-new-tokens", "8"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == expected + "\n"
    # tsrun reads --temperature as a request to sample (as OpenAI and TGI do); Python's
    # generate reads HF's names as HF does, so it asks with do_sample.
    sampled = runner.generate(PROMPTS[0], max_new_tokens=8, do_sample=True, temperature=0.8, seed=5)
    done = subprocess.run(
        [tsrun, str(path), "--text", PROMPTS[0], "--max-new-tokens", "8",
         "--temperature", "0.8", "--seed", "5"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == sampled + "\n"
    lines = [
        {"id": "a", "text": PROMPTS[1], "max_new_tokens": 5},
        {"id": 7, "input_ids": [5, 6, 7]},
        {"id": "bad", "text": PROMPTS[1], "temperature": -1},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = subprocess.run(
        [tsrun, str(path), "--input", str(source), "--max-new-tokens", "4"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [answer["id"] for answer in answers] == ["a", 7, "bad"]
    first = runner.generate(PROMPTS[1], details=True, max_new_tokens=5)
    assert answers[0]["token_ids"] == first["token_ids"] and answers[0]["text"] == first["text"]
    second = runner.generate([5, 6, 7], details=True, max_new_tokens=4)
    assert answers[1]["token_ids"] == second["token_ids"]
    assert "temperature must be >= 0" in answers[2]["error"]
    bad = subprocess.run(
        [tsrun, str(path), "--text", "x", "--top-p", "1.5"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "top_p must be in (0, 1]" in bad.stderr


def test_generation_options_need_a_generation_export(tiny_bert_pt, tsrun):
    done = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--text", "hello", "--max-new-tokens", "3"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--max-new-tokens is for generation exports" in done.stderr
    with pytest.raises(ValueError, match='no "generation" record'):
        tsrunner.Runner(tiny_bert_pt).generate("hello")


def test_an_export_that_cannot_generate_says_why(tmp_path):
    directory = _tiny_decoders().make_decoder("gpt2", tmp_path / "model")
    with pytest.warns(UserWarning, match="cannot generate .* with --buckets"):
        report = tsrunner.export(directory, tmp_path / "model.pt", buckets=[8])
    assert "generation" not in report.manifest
    with pytest.raises(ValueError, match=r"exported with --buckets, which keeps forward only"):
        tsrunner.Runner(tmp_path / "model.pt").generate("hello")


@pytest.mark.parametrize("kind", ["gpt2", "T5"])
def test_a_pt2_export_of_a_generating_model_is_refused(kind, tmp_path):
    """AOTInductor packages get no generation methods: the export says so in one line before
    compiling anything, and writes nothing."""
    if kind == "T5":
        import tiny_models

        directory = tiny_models.make_model(
            "T5", "text2text", tmp_path / "model", tokenizer_source=None
        )
        model_class, task = "T5ForConditionalGeneration", "text2text"
    else:
        directory = _tiny_decoders().make_decoder(kind, tmp_path / "model")
        model_class, task = "GPT2LMHeadModel", "causal-lm"
    message = (
        f"{model_class} cannot generate from a .pt2 (AOTInductor) export: its generation "
        "methods (prefill or encode, and decode, with a KV cache) are TorchScript-only; "
        "export it to a .pt file"
    )
    output = tmp_path / "model.pt2"
    with pytest.raises(tsrunner.ExportError) as caught:
        tsrunner.export(directory, output, task=task)
    assert str(caught.value) == message and not output.exists()
    if kind == "T5":
        return  # the CLI's answer is checked once
    done = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", str(directory), "-o", str(output)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and not output.exists()
    assert done.stderr.strip().splitlines() == [f"tsrunner: error: {message}"], done.stderr


def test_sampling_parameters_alone_decode_as_hf_generate_does(decoder):
    """HF generate samples only with do_sample: temperature, top_k, top_p or min_p alone on a
    model whose generation config says do_sample=False decode greedily (with HF's kind of
    warning), not silently sampled."""
    directory, _, runner = decoder
    greedy = runner.generate(PROMPTS[0], max_new_tokens=8)
    with pytest.warns(UserWarning, match="temperature, top_p only apply when sampling"):
        assert runner.generate(PROMPTS[0], max_new_tokens=8, temperature=0.8, top_p=0.9) == greedy
    with pytest.warns(UserWarning, match="do_sample=False: decoding greedily"):
        assert "".join(runner.stream(PROMPTS[0], max_new_tokens=8, top_k=3)) == greedy
    assert not runner.manifest["generation"]["defaults"].get("do_sample")
    with pytest.warns(UserWarning):
        ids = runner.generate(PROMPTS[0], max_new_tokens=8, temperature=0.8, details=True)
    assert ids["token_ids"] == _hf_generate(directory, [PROMPTS[0]], max_new_tokens=8)[0]
