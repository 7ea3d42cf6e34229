"""Encoder-decoder generation exports (T5, BART: encode + decode, cross-attention keys/values
computed once) and beam search (T5, BART, GPT-2), checked token for token against Transformers'
own generate on tiny random models with their families' trained tokenizers."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import tiny_models
import torch

import tsrunner
from archive_tools import resave
from serve_process import Server
from tsrunner import _core

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCES = [
    "Return a new list of the items",
    "The module provides",
    "If the file does not exist, raise an error and close the stream",
    "A",
]
# What BART summarizers' generation_config.json sets (T5 gets it too): every test runs under it,
# so a request's parameters override saved defaults as in HF generate.
SUMMARIZER = {
    "num_beams": 4, "length_penalty": 2.0, "no_repeat_ngram_size": 3, "early_stopping": True,
    "max_length": 12, "min_length": 5,
}  # fmt: skip
GREEDY = {"num_beams": 1, "no_repeat_ngram_size": 0}


@pytest.fixture(scope="module", params=["T5", "BART"])
def seq2seq(request, tmp_path_factory):
    """(model directory, export path, Runner) of one tiny encoder-decoder, its
    generation_config.json a summarizer's (SUMMARIZER; BART's forced BOS too)."""
    workdir = tmp_path_factory.mktemp(request.param)
    directory = tiny_models.make_model(
        request.param, "text2text", workdir / "model", tokenizer_source=None,
        family_tokenizers=True,
    )  # fmt: skip
    config = json.loads((directory / "generation_config.json").read_text())
    config.update(SUMMARIZER)
    if "forced_eos_token_id" in config:  # BART's
        config["forced_bos_token_id"] = 0
    (directory / "generation_config.json").write_text(json.dumps(config))
    path = workdir / "model.pt"
    report = tsrunner.export(directory, path, task="text2text", max_length=32)
    assert all(check["passed"] for check in report.manifest["generation"]["validation"])
    return directory, path, tsrunner.Runner(path, threads=1)


@functools.cache
def _hf(directory: Path):
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(directory).eval()
    return model, transformers.AutoTokenizer.from_pretrained(directory)


def _hf_generate(directory: Path, sources: list[str], **params) -> list[list[int]]:
    """HF generate's new tokens per source (decoder start dropped), cut at the first EOS."""
    model, tokenizer = _hf(directory)
    batch = tokenizer(sources, return_tensors="pt", padding=True)  # right padding
    with torch.inference_mode():
        output = model.generate(**batch, **params)
    eos = model.generation_config.eos_token_id
    return [row[: row.index(eos)] if eos in row else row for row in output[:, 1:].tolist()]


def test_manifest_records_the_encoder_decoder(seq2seq):
    directory, path, runner = seq2seq
    record = runner.manifest["generation"]
    assert record["kind"] == "encoder-decoder"
    assert record["methods"] == {"encode": "encode", "decode": "decode"}
    config = json.loads((directory / "generation_config.json").read_text())
    assert record["decoder_start_token_id"] == config["decoder_start_token_id"]
    assert record["eos_token_ids"] == [config["eos_token_id"]]
    assert record["forced_eos_token_ids"] == (
        [config["forced_eos_token_id"]] if "forced_eos_token_id" in config else []
    )
    assert record["forced_bos_token_id"] == config.get("forced_bos_token_id")
    assert {name: record["defaults"][name] for name in SUMMARIZER} == SUMMARIZER
    assert record["cross_cache"]["key"] == record["cache"]["key"]
    assert {check["batch"] for check in record["validation"]} == {1, 2, 3}
    text = tsrunner.manifest.describe(tsrunner.read_manifest(path))
    assert "encode + decode" in text and "decoder start" in text


def test_greedy_equals_hf_generate(seq2seq):
    directory, _, runner = seq2seq
    narrow = _core.Generator(runner, max_batch=2)
    for params in (
        {"max_new_tokens": 10, **GREEDY},
        {"max_new_tokens": 8, "num_beams": 1, "repetition_penalty": 1.4, "no_repeat_ngram_size": 2},
    ):
        expected = _hf_generate(directory, SOURCES, do_sample=False, **params)
        got = runner.generate(SOURCES, details=True, **params)
        assert [result["token_ids"] for result in got] == expected, params
        # Two rows: sources of different lengths join a running batch as others leave.
        assert [r["token_ids"] for r in narrow.generate(SOURCES, params)] == expected, params


def test_defaults_come_from_generation_config(seq2seq):
    """No parameters: the saved config's beams, length penalty, no-repeat n-grams, early
    stopping, max/min length (counting the decoder start) and forced BOS/EOS, as HF applies them."""
    directory, _, runner = seq2seq
    got = runner.generate(SOURCES, details=True)
    assert [result["token_ids"] for result in got] == _hf_generate(directory, SOURCES)
    assert all(4 <= len(result["token_ids"]) <= 11 for result in got)


def test_beam_search_equals_hf_generate(seq2seq):
    directory, _, runner = seq2seq
    for params in (
        {"num_beams": 3, "max_new_tokens": 9},
        {"num_beams": 4, "max_new_tokens": 7, "length_penalty": 2.0, "early_stopping": True},
        {"num_beams": 2, "max_new_tokens": 6, "early_stopping": "never", "length_penalty": 0.5},
    ):
        expected = _hf_generate(directory, SOURCES, **params)
        got = runner.generate(SOURCES, details=True, **params)
        assert [result["token_ids"] for result in got] == expected, params


def test_beam_search_returns_several_sequences(seq2seq):
    directory, _, runner = seq2seq
    params = {"num_beams": 3, "max_new_tokens": 6}
    expected = _hf_generate(directory, SOURCES[:1], num_return_sequences=3, **params)
    got = runner.generate(SOURCES[0], details=True, num_return_sequences=3, **params)
    assert [got["token_ids"]] + [a["token_ids"] for a in got["alternatives"]] == expected
    scores = [got["score"]] + [a["score"] for a in got["alternatives"]]
    assert scores == sorted(scores, reverse=True)


def test_sampling_is_reproducible_and_independent_of_batch(seq2seq):
    _, _, runner = seq2seq
    sample = {"max_new_tokens": 10, "do_sample": True, "temperature": 1.5, "top_k": 0,
              "ignore_eos": True, **GREEDY}  # fmt: skip
    alone = runner.generate(SOURCES[0], details=True, seed=11, **sample)["token_ids"]
    assert runner.generate(SOURCES[0], details=True, seed=11, **sample)["token_ids"] == alone
    assert runner.generate(SOURCES, details=True, seed=11, **sample)[0]["token_ids"] == alone
    narrow = _core.Generator(runner, max_batch=2)
    late = narrow.generate(SOURCES[1:] + SOURCES[:1], {"seed": 11, **sample})[-1]
    assert late["token_ids"] == alone  # joined a running batch, same draws
    others = {tuple(runner.generate(SOURCES[0], details=True, seed=s, **sample)["token_ids"])
              for s in range(4)}  # fmt: skip
    assert len(others) > 1


def test_stream_equals_generate(seq2seq):
    _, _, runner = seq2seq
    sampled = {"max_new_tokens": 12, "do_sample": True, "temperature": 0.9, "seed": 2, **GREEDY}
    for params in (sampled, {"max_new_tokens": 8, "num_beams": 3}):
        assert "".join(runner.stream(SOURCES[2], **params)) == runner.generate(SOURCES[2], **params)


def test_source_longer_than_the_encoder_is_refused(seq2seq):
    _, _, runner = seq2seq
    limit = runner.manifest["generation"]["max_source"]
    with pytest.raises(ValueError, match=f"encoder takes at most {limit}"):
        runner.generate([[5] * (limit + 1)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_beams": 0}, "num_beams must be >= 1"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences must be in [1, num_"),
        ({"num_beams": 2, "early_stopping": "sometimes"}, "early_stopping must be true, false"),
        ({"num_beams": 2, "do_sample": True}, "num_beams 2 (the request's) is HF's beam sampl"),
        ({"num_beams": 2, "stop": ["x"]}, "stop strings are not supported with beam search"),
    ],
)  # fmt: skip
def test_bad_beam_parameters_are_refused(seq2seq, params, message):
    _, _, runner = seq2seq
    with pytest.raises(ValueError) as caught:
        runner.generate("hello", **params)
    assert message in str(caught.value)


def test_tsrun_generates_from_text(seq2seq, tsrun):
    _, path, runner = seq2seq
    # T5 greedy (streamed as it is made), BART with beams.
    beams = 3 if runner.manifest["model"]["type"] == "bart" else 1
    flags = ["--max-new-tokens", "7", "--num-beams", str(beams)]
    params = {"max_new_tokens": 7, "num_beams": beams}
    done = subprocess.run(
        [tsrun, str(path), "--text", SOURCES[0], *flags],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == runner.generate(SOURCES[0], **params) + "\n"


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")
def test_gpt2_beam_search_equals_hf_generate(tmp_path):
    spec = importlib.util.spec_from_file_location("tiny_decoders", DATA / "tiny_decoders.py")
    tiny_decoders = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_decoders)
    directory = tiny_decoders.make_decoder("gpt2", tmp_path / "model")
    tsrunner.export(directory, tmp_path / "model.pt", task="causal-lm", max_length=32)
    runner = tsrunner.Runner(tmp_path / "model.pt", threads=1)
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.eos_token
    prompts = SOURCES[:3]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    params = {"num_beams": 3, "max_new_tokens": 8, "length_penalty": 1.5}
    with torch.inference_mode():
        output = model.generate(**batch, **params)
    expected = []
    for row in output[:, batch["input_ids"].shape[1] :].tolist():
        expected.append(row[: row.index(0)] if 0 in row else row)
    got = runner.generate(prompts, details=True, **params)
    assert [result["token_ids"] for result in got] == expected
    # No max_length in the model's config: Transformers 5 generates 20 new tokens.
    short = [SOURCES[1], SOURCES[3]]
    batch = tokenizer(short, return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.generate(**batch, do_sample=False)
    expected = [row[: row.index(0)] if 0 in row else row
                for row in output[:, batch["input_ids"].shape[1] :].tolist()]  # fmt: skip
    assert [r["token_ids"] for r in runner.generate(short, details=True)] == expected
    assert max(map(len, expected)) == 20  # not 20 minus the prompt


def _sse_payloads(server: Server, path: str, body: dict, prefix: str) -> list[str]:
    status, headers, data = server.request("POST", path, body)
    assert status == 200 and headers["Content-Type"] == "text/event-stream", data
    events = data.decode().removesuffix("\n\n").split("\n\n")
    assert all(event.startswith(prefix) for event in events), data
    return [event[len(prefix) :] for event in events]


def test_serve_equals_hf_generate(seq2seq, tsrun, tmp_path):
    """tsrun serve on an encoder-decoder export: OpenAI's /v1/completions and TGI's /generate
    give HF generate's tokens under the saved summarizer config (beam search) and under greedy
    saved defaults (a copy of the export with them); streamed text equals the answer."""
    directory, path, runner = seq2seq

    def greedy_defaults(files: dict[str, str]) -> dict[str, str]:
        manifest = json.loads(files["tsrunner/manifest.json"])
        manifest["generation"]["defaults"].update(GREEDY)
        manifest["generation"]["generation_config"].update(GREEDY)
        return {**files, "tsrunner/manifest.json": json.dumps(manifest)}

    resave(path, tmp_path / "greedy.pt", edit_files=greedy_defaults)
    eos = runner.manifest["generation"]["eos_token_ids"]
    source, limit = SOURCES[2], 7
    # TGI's routes serve the first model: one server per export.
    for served, params in ((path, {}), (tmp_path / "greedy.pt", GREEDY)):
        tokens = _hf_generate(directory, [source], max_new_tokens=limit, **params)[0]
        expected = runner.generate(source, details=True, max_new_tokens=limit, **params)
        assert expected["token_ids"] == tokens, params
        with Server(tsrun, [served]) as server:
            body = {"prompt": source, "max_tokens": limit}
            status, answer = server.post("/v1/completions", body)
            assert status == 200 and answer["choices"][0]["text"] == expected["text"], params
            assert answer["usage"]["completion_tokens"] == len(tokens)
            events = _sse_payloads(server, "/v1/completions", {**body, "stream": True}, "data: ")
            assert events[-1] == "[DONE]"
            streamed = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
            assert streamed == expected["text"], params
            tgi = {"inputs": source, "parameters": {"max_new_tokens": limit, "details": True}}
            status, answer = server.post("/generate", tgi)
            assert status == 200 and answer["generated_text"] == expected["text"], params
            ids = [token["id"] for token in answer["details"]["tokens"]]
            assert ids in (tokens, tokens + eos[:1]), params  # TGI lists the EOS that ended it
            events = _sse_payloads(server, "/generate_stream", tgi, "data:")
            assert json.loads(events[-1])["generated_text"] == expected["text"], params
            if not params:  # sampling with the saved beams is HF's beam sampling: refused
                sampled = {"prompt": source, "temperature": 0.7}
                status, answer = server.post("/v1/completions", sampled)
                assert status == 400 and "is HF's beam sampling" in answer["error"]["message"]


def test_saved_token_biases_give_hf_generate_tokens(seq2seq, tmp_path):
    """suppress_tokens, begin_suppress_tokens (after BART's forced BOS) and bad_words_ids saved
    in generation_config.json, chosen from each mode's output to change it: HF generate's tokens,
    greedy and with the saved beams."""
    directory, path, runner = seq2seq
    record = runner.manifest["generation"]
    special = {record["forced_bos_token_id"], *record["eos_token_ids"]}
    first = 1 if record["forced_bos_token_id"] is not None else 0  # the first token not forced
    for mode, params in (
        ("greedy", {"max_new_tokens": 8, **GREEDY}),
        ("beams", {"max_new_tokens": 8}),
    ):
        plain = [r["token_ids"] for r in runner.generate(SOURCES, details=True, **params)]
        tokens = [t for t in plain[0] if t not in special]
        settings = {
            "suppress_tokens": [max(set(tokens), key=tokens.count)],
            "begin_suppress_tokens": sorted({row[first] for row in plain if len(row) > first}),
            "bad_words_ids": [plain[2][first : first + 2]],
        }

        def with_settings(files: dict[str, str], settings=settings) -> dict[str, str]:
            manifest = json.loads(files["tsrunner/manifest.json"])
            manifest["generation"]["generation_config"].update(settings)
            return {**files, "tsrunner/manifest.json": json.dumps(manifest)}

        resave(path, tmp_path / f"{mode}.pt", edit_files=with_settings)
        biased = tsrunner.Runner(tmp_path / f"{mode}.pt", threads=1)
        expected = _hf_generate(directory, SOURCES, **params, **settings)
        assert expected != _hf_generate(directory, SOURCES, **params), "the settings do nothing"
        got = biased.generate(SOURCES, details=True, **params)
        assert [r["token_ids"] for r in got] == expected, mode
