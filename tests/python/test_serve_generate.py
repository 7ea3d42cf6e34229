"""tsrun serve on a generation export: OpenAI's /v1/completions (with OpenAI's own client),
text-generation-inference's /generate and /generate_stream, the errors, and a client that leaves
mid-stream. Every text is checked against Runner.generate (the same C++ Generator in-process)
and greedy text against Transformers' own generate."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

import tsrunner
from serve_process import Server

DATA = Path(__file__).resolve().parents[1] / "data"
PROMPT = "If the file does not exist, raise an error and"
PROMPTS = ["The module provides", "Return a new list", "A"]
CONTEXT = 512  # room for a long stream in the disconnect test


def _tiny_decoders():
    spec = importlib.util.spec_from_file_location("tiny_decoders", DATA / "tiny_decoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.CONTEXT = CONTEXT
    return module


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """(model directory, export path, Runner) of a tiny GPT-2 with a 512-token context."""
    workdir = tmp_path_factory.mktemp("gen")
    directory = _tiny_decoders().make_decoder("gpt2", workdir / "model")
    path = workdir / "gen.pt"
    tsrunner.export(directory, path, task="causal-lm")
    return directory, path, tsrunner.Runner(path, threads=1)


@pytest.fixture(scope="module")
def server(tsrun, gen, tiny_bert_pt):
    with Server(tsrun, [gen[1], tiny_bert_pt], "--name", "gen", "--name", "bert") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _hf_greedy_text(directory: Path, prompt: str, max_new_tokens: int) -> str:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    batch = tokenizer([prompt], return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens)
    new = output[0, batch["input_ids"].shape[1] :].tolist()
    eos = model.generation_config.eos_token_id
    return tokenizer.decode(new[: new.index(eos)] if eos in new else new)


def _sse_events(server: Server, path: str, body: dict, prefix: str) -> list[str]:
    """The raw payloads of a streamed answer, checking the framing: `prefix{payload}\\n\\n`."""
    status, headers, data = server.request("POST", path, body)
    assert status == 200 and headers["Content-Type"] == "text/event-stream", data
    text = data.decode()
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(event.startswith(prefix) and "\n" not in event for event in events), text
    return [event[len(prefix) :] for event in events]


def _metric(server: Server, name: str) -> float:
    _, _, data = server.request("GET", "/metrics")
    match = re.search(rf"^{re.escape(name)} (\S+)$", data.decode(), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_openai_client_greedy_equals_runner_and_hf(client, gen):
    directory, _, runner = gen
    expected = runner.generate(PROMPT, details=True, max_new_tokens=12)
    response = client.completions.create(model="gen", prompt=PROMPT, max_tokens=12, temperature=0)
    assert response.object == "text_completion" and response.id.startswith("cmpl-")
    assert response.model == "gen" and isinstance(response.created, int)
    (choice,) = response.choices
    assert choice.index == 0 and choice.logprobs is None
    assert choice.text == expected["text"] == _hf_greedy_text(directory, PROMPT, 12)
    assert choice.finish_reason == ("length" if len(expected["token_ids"]) == 12 else "stop")
    prompt_tokens = len(runner.tokenizer.encode(PROMPT).ids)
    assert response.usage.prompt_tokens == prompt_tokens == expected["prompt_tokens"]
    assert response.usage.completion_tokens == len(expected["token_ids"])
    assert response.usage.total_tokens == prompt_tokens + len(expected["token_ids"])
    # max_tokens defaults to OpenAI's 16 (ignore_eos: an extension, so that all 16 come).
    default = client.completions.create(model="gen", prompt=PROMPT, extra_body={"ignore_eos": True})
    assert default.usage.completion_tokens == 16 and default.choices[0].finish_reason == "length"
    assert default.choices[0].text == runner.generate(PROMPT, max_new_tokens=16, ignore_eos=True)


def test_streamed_equals_not_streamed(client, server, gen):
    _, _, runner = gen
    params = {"max_tokens": 20, "temperature": 0.9, "seed": 11}
    whole = client.completions.create(model="gen", prompt=PROMPT, **params)
    assert whole.choices[0].text == runner.generate(
        PROMPT, max_new_tokens=20, do_sample=True, temperature=0.9, seed=11
    )
    chunks = list(
        client.completions.create(
            model="gen", prompt=PROMPT, stream=True, stream_options={"include_usage": True},
            **params,
        )
    )  # fmt: skip
    *texts, usage_chunk = chunks
    assert "".join(chunk.choices[0].text for chunk in texts) == whole.choices[0].text
    assert texts[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(chunk.choices[0].finish_reason is None for chunk in texts[:-1])
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].object == "text_completion"
    assert usage_chunk.choices == [] and usage_chunk.usage == whole.usage
    # The raw framing: `data: {json}\n\n` events, `usage: null` on each, then `data: [DONE]`.
    body = {"model": "gen", "prompt": PROMPT, "stream": True, **params}
    events = _sse_events(server, "/v1/completions", body, "data: ")
    assert events[-1] == "[DONE]"
    decoded = [json.loads(event) for event in events[:-1]]
    assert "".join(event["choices"][0]["text"] for event in decoded) == whole.choices[0].text
    assert all("usage" not in event for event in decoded)  # not asked for
    body["stream_options"] = {"include_usage": True}
    events = _sse_events(server, "/v1/completions", body, "data: ")
    decoded = [json.loads(event) for event in events[:-1]]
    assert all(event["usage"] is None for event in decoded[:-1])
    assert decoded[-1]["choices"] == [] and decoded[-1]["usage"]["completion_tokens"] > 0


def test_n_choices_with_a_seed(client, gen):
    _, _, runner = gen
    params = {"max_tokens": 10, "temperature": 1.0, "seed": 5, "n": 3}
    first = client.completions.create(model="gen", prompt=PROMPT, **params)
    again = client.completions.create(model="gen", prompt=PROMPT, **params)
    texts = [choice.text for choice in first.choices]
    assert [choice.index for choice in first.choices] == [0, 1, 2]
    assert texts == [choice.text for choice in again.choices]  # reproducible by seed
    assert len(set(texts)) > 1  # choice j draws with seed + j
    for j, text in enumerate(texts):
        assert text == runner.generate(
            PROMPT, max_new_tokens=10, do_sample=True, temperature=1.0, seed=5 + j
        )
    assert first.usage.prompt_tokens == len(runner.tokenizer.encode(PROMPT).ids)  # counted once


def test_prompt_lists_and_token_ids(client, gen):
    _, _, runner = gen
    expected = runner.generate(PROMPTS, details=True, max_new_tokens=8)
    response = client.completions.create(model="gen", prompt=PROMPTS, max_tokens=8)
    assert [choice.text for choice in response.choices] == [e["text"] for e in expected]
    assert response.usage.prompt_tokens == sum(e["prompt_tokens"] for e in expected)
    ids = [runner.tokenizer.encode(prompt).ids for prompt in PROMPTS]
    one = client.completions.create(model="gen", prompt=ids[0], max_tokens=8)
    assert one.choices[0].text == expected[0]["text"]
    several = client.completions.create(model="gen", prompt=ids, max_tokens=8)
    assert [choice.text for choice in several.choices] == [e["text"] for e in expected]
    assert several.usage.completion_tokens == sum(len(e["token_ids"]) for e in expected)


def test_concurrent_requests_share_the_running_batch(server, gen):
    """Requests from several connections at once decode together (Generator::submit): each
    gets exactly what it gets alone."""
    _, _, runner = gen
    budgets = [5, 30, 12, 21]
    answers: dict[int, dict] = {}

    def ask(i: int) -> None:
        body = {"prompt": PROMPTS[i % 3], "max_tokens": budgets[i], "ignore_eos": True}
        answers[i] = server.post("/v1/completions", body)[1]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(budgets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, budget in enumerate(budgets):
        alone = runner.generate(PROMPTS[i % 3], max_new_tokens=budget, ignore_eos=True)
        assert answers[i]["choices"][0]["text"] == alone
        assert answers[i]["usage"]["completion_tokens"] == budget


def test_stop_strings(client, gen):
    _, _, runner = gen
    full = runner.generate(PROMPT, max_new_tokens=16, ignore_eos=True)
    stop = full[3:6]
    cut = full[: full.index(stop)]
    extra = {"ignore_eos": True}
    response = client.completions.create(
        model="gen", prompt=PROMPT, max_tokens=16, stop=stop, extra_body=extra
    )
    assert response.choices[0].text == cut and response.choices[0].finish_reason == "stop"
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="gen", prompt=PROMPT, max_tokens=16, stop=[stop, "zzz"], stream=True,
            extra_body=extra,
        )
    ]  # fmt: skip
    assert "".join(pieces) == cut and all(stop not in piece for piece in pieces)


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"temperature": 2.5}, 400, "temperature", "`temperature` must be in [0, 2]"),
        ({"top_p": 0}, 400, "top_p", "`top_p` must be in (0, 1]"),
        ({"n": 0}, 400, "n", "`n` must be in [1, 128]"),
        ({"max_tokens": 0}, 400, "max_tokens", "`max_tokens` must be in [1,"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4 strings"),
        ({"stop": 3}, 400, "stop", "must be a string or a list"),
        ({"seed": "x"}, 400, "seed", "`seed` must be an integer"),
        ({"logprobs": 2}, 400, "logprobs", "`logprobs` is not supported"),
        ({"stream_options": {"include_usage": True}}, 400, "stream_options", "only allowed when"),
        ({"beams": 2}, 400, "beams", "Unrecognized request argument supplied: beams"),
        ({"prompt": None}, 400, "prompt", "`prompt` is required"),
        ({"prompt": [1, -2]}, 400, "prompt", "token ids (integers >= 0)"),
        ({"prompt": [5] * 600}, 400, "prompt", "context takes at most 511"),
        ({"prompt": [5, 99999]}, 400, "prompt", "outside the vocabulary"),
        ({"model": "nope"}, 404, "model", "The model `nope` does not exist"),
        ({"model": "bert"}, 400, "model", "use /v1/embeddings or /embed"),
    ],
)
def test_bad_requests_name_the_parameter(server, body, status, param, message):
    got_status, answer = server.post("/v1/completions", {"prompt": PROMPT, **body})
    assert got_status == status, answer
    error = answer["error"]
    assert message in error["message"] and error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_openai_client_sees_errors(client):
    import openai

    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="gen", prompt=PROMPT, temperature=-1)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt=PROMPT)
    # Chat templates are Jinja: one clear error, not retried.
    with pytest.raises(openai.InternalServerError, match="no C\\+\\+ Jinja"):
        client.chat.completions.create(model="gen", messages=[{"role": "user", "content": "hi"}])


def test_chat_completions_answers_501(server):
    status, headers, data = server.request(
        "POST", "/v1/chat/completions", {"model": "gen", "messages": []}
    )
    assert status == 501 and headers["x-should-retry"] == "false"
    assert "/v1/completions" in json.loads(data)["error"]["message"]


def test_encoder_routes_refuse_a_generation_export(server):
    status, body = server.post("/embed", {"inputs": "hello"})
    assert status == 424 and "/v1/completions, /generate or /generate_stream" in body["error"]
    status, body = server.post("/v1/embeddings", {"model": "gen", "input": "hello"})
    assert status == 422 and "/v1/completions" in body["error"]["message"]
    status, body = server.post("/predict", {"inputs": "hello"})
    assert status == 424 and "generates text" in body["error"]


def test_tgi_generate(server, gen):
    _, _, runner = gen
    expected = runner.generate(PROMPT, details=True, max_new_tokens=10)
    status, body = server.post(
        "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 10}}
    )
    assert status == 200 and body == {"generated_text": expected["text"]}
    params = {"max_new_tokens": 10, "details": True, "return_full_text": True}
    status, body = server.post("/generate", {"inputs": PROMPT, "parameters": params})
    assert body["generated_text"] == PROMPT + expected["text"]
    details = body["details"]
    ids = [token["id"] for token in details["tokens"]]
    if expected["finish_reason"] == "length":
        assert details["finish_reason"] == "length" and ids == expected["token_ids"]
    else:  # EOS ends it and is listed last, as TGI lists it
        assert details["finish_reason"] == "eos_token" and ids == expected["token_ids"] + [0]
    assert details["generated_tokens"] == len(ids) and details["seed"] is None
    sampled = {"max_new_tokens": 12, "temperature": 0.8, "seed": 4, "stop": ["zzz"]}
    status, body = server.post("/generate", {"inputs": PROMPT, "parameters": sampled})
    assert body["generated_text"] == runner.generate(
        PROMPT, max_new_tokens=12, do_sample=True, temperature=0.8, seed=4
    )


def test_tgi_generate_stream(server, gen):
    _, _, runner = gen
    params = {"max_new_tokens": 14, "temperature": 0.7, "seed": 9, "details": True}
    expected = runner.generate(
        PROMPT, details=True, max_new_tokens=14, do_sample=True, temperature=0.7, seed=9
    )
    events = [
        json.loads(event)
        for event in _sse_events(
            server, "/generate_stream", {"inputs": PROMPT, "parameters": params}, "data:"
        )
    ]
    assert all(event["generated_text"] is None for event in events[:-1])
    assert "".join(event["token"]["text"] for event in events) == expected["text"]
    assert events[-1]["generated_text"] == expected["text"]
    assert [event["index"] for event in events] == list(range(len(events)))
    generated = [event["token"]["id"] for event in events if not event["token"]["special"]]
    assert generated == expected["token_ids"]
    assert events[-1]["details"]["seed"] == 9
    assert events[-1]["details"]["generated_tokens"] == len(events)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"parameters": {"temperature": -1}}, "`parameters.temperature` must be >= 0"),
        ({"parameters": {"top_k": -1}}, "`parameters.top_k` must be in [0,"),
        ({"parameters": {"best_of": 2}}, "`parameters.best_of` is not supported"),
        ({"parameters": {"max_new_tokens": 600}}, None),
        ({"inputs": ["a"]}, "`inputs` must be a string"),
        ({"parameters": {"beams": 2}}, "Unrecognized request argument supplied: parameters.beams"),
    ],
)
def test_tgi_errors(server, body, message):
    status, answer = server.post("/generate", {"inputs": PROMPT, **body})
    if message is None:  # more new tokens than the context holds: stops at it, "length"
        assert status == 200
        return
    assert status == 422 and answer["error_type"] == "validation" and message in answer["error"]


def test_client_leaving_mid_stream_frees_its_slot(server, gen):
    """A client that closes its connection after the first chunk: its sequence is cancelled at
    the next step (long before its 500 tokens), and the server goes on answering."""
    _, _, runner = gen
    before_tokens = _metric(server, "tsrun_generated_tokens_total")
    before_cancelled = _metric(server, 'tsrun_generations_total{finish_reason="cancelled"}')
    body = json.dumps(
        {"prompt": [5], "max_tokens": 500, "stream": True, "ignore_eos": True}
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )  # fmt: skip
        received = b""
        while b"data: {" not in received:
            piece = raw.recv(4096)
            assert piece, received
            received += piece
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        cancelled = _metric(server, 'tsrun_generations_total{finish_reason="cancelled"}')
        if cancelled > before_cancelled and _metric(server, "tsrun_generating_sequences") == 0:
            break
        time.sleep(0.05)
    assert cancelled == before_cancelled + 1
    assert _metric(server, "tsrun_generating_sequences") == 0
    assert _metric(server, "tsrun_generated_tokens_total") - before_tokens < 500
    status, answer = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 4})
    assert status == 200
    assert answer["choices"][0]["text"] == runner.generate(PROMPT, max_new_tokens=4)


def test_tsrun_bench_generate(tsrun, gen, tiny_bert_pt):
    """`tsrun bench --generate` at a smoke size (the export is this file's): a consistent report."""
    import subprocess

    _, path, _ = gen
    done = subprocess.run(
        [tsrun, "bench", str(path), "--generate", "--batch", "2", "--prompt-tokens", "6",
         "--new-tokens", "5", "--iterations", "2", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["batch"], report["prompt_tokens"], report["new_tokens"]) == (2, 6, 5)
    assert report["time_to_first_token_ms"] > 0 and report["time_per_output_token_ms"] > 0
    assert report["per_stream_tokens_per_s"] == pytest.approx(
        1e3 / report["time_per_output_token_ms"]
    )
    assert report["decode_tokens_per_s"] == pytest.approx(2 * report["per_stream_tokens_per_s"])
    assert report["aggregate_tokens_per_s"] == pytest.approx(2 * 5 / report["total_s"])
    assert report["peak_rss_mb"] > 10
    text = subprocess.run(
        [tsrun, "bench", str(path), "--generate", "--batch", "1", "--prompt-tokens", "4",
         "--new-tokens", "3", "--iterations", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    for label in ["first token", "per token", "per stream", "peak RSS"]:
        assert label in text.stdout
    too_long = subprocess.run(
        [tsrun, "bench", str(path), "--generate", "--batch", "1", "--prompt-tokens", "600"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert too_long.returncode == 2 and "context takes at most 511" in too_long.stderr
    encoder = subprocess.run(
        [tsrun, "bench", str(tiny_bert_pt), "--generate", "--batch", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert encoder.returncode == 2 and 'no "generation" record' in encoder.stderr
