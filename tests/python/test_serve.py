"""tsrun serve over real HTTP: TEI's routes, OpenAI's client, Triton's client, limits and errors.

Every server here is the real tsrun binary started on a free port (serve_process.Server), and
every answer is compared with what the Python Runner computes for the same input.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import torch

import tsrunner
from serve_process import Server, environment_without_api_key
from tsrunner import sample_text

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Serving embeddings from C++ with no Python in the process.",
    "short",
    "A considerably longer sentence, so that the batch has inputs of different lengths to pad.",
]
LONG_TEXT = " ".join(["token"] * 400)  # over MiniLM's 128 tokens


@pytest.fixture(scope="module")
def server(tsrun, minilm_pt, classifier_pt):
    with Server(
        tsrun,
        [minilm_pt, classifier_pt],
        "--payload-limit",
        "200000",
        "--header-limit",
        "4096",
        "--max-client-batch-size",
        "8",
        "--read-timeout-ms",
        "1000",
        # Bit-for-bit comparisons with Runner.predict: the same kernels on both sides (oneDNN's
        # results depend on the batch's shape, and the server batches requests its own way).
        "--kernel-path",
        "default",
        env=environment_without_api_key(),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def minilm(minilm_pt):
    return tsrunner.Runner(minilm_pt, threads=1, kernel_path="default")


@pytest.fixture(scope="module")
def tokenizer(minilm_pt):
    return tsrunner.Tokenizer.from_file(minilm_pt)


def _embeddings(runner, texts):
    return np.array([p["embedding"] for p in runner.predict(texts)], dtype=np.float32)


def _assert_same_embeddings(got, want):
    """Equal up to float32 rounding: the server batches requests its own way, and a different
    batch (padding, pooling in the graph) rounds the last bit differently."""
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), want, rtol=1e-5, atol=1e-7)


def test_embed_matches_runner_predict(server, minilm):
    status, body = server.post("/embed", {"inputs": TEXTS})
    assert status == 200
    _assert_same_embeddings(body, _embeddings(minilm, TEXTS))
    # A single string is a batch of one, answered as a list of one vector (as TEI does).
    status, single = server.post("/embed", {"inputs": TEXTS[0]})
    assert status == 200 and len(single) == 1
    np.testing.assert_allclose(single[0], body[0], atol=1e-6)


def test_embed_truncation(server, minilm):
    status, body = server.post("/embed", {"inputs": [LONG_TEXT]})
    assert status == 422 and body["error_type"] == "Validation"
    assert "inputs[0]" in body["error"] and "128 tokens" in body["error"]
    status, body = server.post("/embed", {"inputs": [LONG_TEXT], "truncate": True})
    assert status == 200
    np.testing.assert_allclose(body[0], _embeddings(minilm, [LONG_TEXT])[0], atol=1e-6)


def test_openai_client(server, minilm, tokenizer):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    for encoding_format in ("float", "base64"):
        response = client.embeddings.create(
            model="minilm", input=TEXTS, encoding_format=encoding_format
        )
        if encoding_format == "base64":  # asked for explicitly, the client leaves it encoded
            got = np.array(
                [np.frombuffer(base64.b64decode(item.embedding), "<f4") for item in response.data]
            )
        else:
            got = np.array([item.embedding for item in response.data], dtype=np.float32)
        _assert_same_embeddings(got, _embeddings(minilm, TEXTS))
        assert [item.index for item in response.data] == list(range(len(TEXTS)))
        tokens = sum(len(tokenizer.encode(text).ids) for text in TEXTS)
        assert response.usage.prompt_tokens == response.usage.total_tokens == tokens
        assert response.model == "minilm"
    # Told nothing, the client asks for base64 and decodes it itself.
    default = client.embeddings.create(model="minilm", input=TEXTS[0])
    _assert_same_embeddings(default.data[0].embedding, _embeddings(minilm, TEXTS[:1])[0])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="classifier", input="not an embedding model")


def test_openai_client_sends_a_thousand_inputs(server, minilm):
    # LangChain's OpenAIEmbeddings sends 1,000 texts per request; OpenAI takes up to 2,048. The
    # server's --max-client-batch-size (8 here) is TEI's limit and does not apply (issue 23).
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    texts = [text[:80] for text in sample_text.sample(1000, offset=500)]
    response = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert [item.index for item in response.data] == list(range(1000))
    got = np.array([item.embedding for item in response.data], dtype=np.float32)
    # The server batches 1,000 inputs its own way: float32 rounding of the unit vectors' entries.
    np.testing.assert_allclose(got, _embeddings(minilm, texts), rtol=0, atol=1e-6)
    status, body = server.post("/v1/embeddings", {"model": "minilm", "input": ["x"] * 2049})
    assert status == 422 and "`input` has 2049 items; at most 2048" in body["error"]["message"]
    status, body = server.post("/embed", {"inputs": ["x"] * 9})  # TEI's route keeps its limit
    assert status == 422 and "maximum allowed batch size 8" in body["error"]


def test_tritonclient_v2(server, minilm, tokenizer):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"{server.host}:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("minilm") and not client.is_model_ready("nope")
        metadata = client.get_model_metadata("minilm")
        # The manifest's tensors, then the text input (tests/python/test_serve_v2_text.py).
        assert [i["name"] for i in metadata["inputs"]] == [
            *(i["name"] for i in minilm.manifest["inputs"]),
            "text",
        ]
        encoding = tokenizer.encode("Triton's client speaks the v2 protocol.")
        ids = np.array([encoding.ids], dtype=np.int64)
        expected = minilm.run(
            {
                "input_ids": torch.from_numpy(ids),
                "attention_mask": torch.ones_like(torch.from_numpy(ids)),
            }
        )
        for binary in (False, True):
            inputs = [
                triton.InferInput("input_ids", list(ids.shape), "INT64"),
                triton.InferInput("attention_mask", list(ids.shape), "INT64"),
            ]
            inputs[0].set_data_from_numpy(ids, binary_data=binary)
            inputs[1].set_data_from_numpy(np.ones_like(ids), binary_data=binary)
            outputs = [triton.InferRequestedOutput("last_hidden_state", binary_data=binary)]
            result = client.infer("minilm", inputs, outputs=outputs)
            np.testing.assert_array_equal(
                result.as_numpy("last_hidden_state"), expected["last_hidden_state"].numpy()
            )
        # Checked against the manifest like Runner.run: a float where int64 ids belong.
        bad = triton.InferInput("input_ids", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32), binary_data=False)
        with pytest.raises(triton.InferenceServerException, match="input_ids"):
            client.infer("minilm", [bad])
    finally:
        client.close()


def test_deeply_nested_json_is_refused_not_a_crash(server):
    deep = "[" * 90_000 + "]" * 90_000  # under the 200000-byte limit
    status, answer = server.post("/embed", '{"inputs": ' + deep + "}")
    assert status == 422 and "inputs" in answer["error"]
    body = '{"inputs": [{"name": "input_ids", "shape": [1], "datatype": "INT64", "data": '
    status, answer = server.post("/v2/models/minilm/infer", body + deep + "}]}")
    assert status == 400 and "nested too deep" in answer["error"]
    assert server.request("GET", "/health")[0] == 200


def test_v2_json_integer_limits(server):
    lowest = {"name": "input_ids", "shape": [1, 1], "datatype": "INT64", "data": [-(2**63)]}
    status, answer = server.post("/v2/models/minilm/infer", {"inputs": [lowest]})
    assert status == 400 and "input_ids" in answer["error"]  # parsed, then refused by the manifest
    too_big = dict(lowest, data=[2**63])
    status, answer = server.post("/v2/models/minilm/infer", {"inputs": [too_big]})
    assert status == 400 and "out of range" in answer["error"]


def test_v2_json_shape_mismatch_is_400(server):
    body = {"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2]}]}
    status, answer = server.post("/v2/models/minilm/infer", body)
    assert status == 400 and "3 elements" in answer["error"]


def test_predict_answers_other_tasks_as_runner_predict(server, minilm):
    # Beyond TEI: an export of another task answers /predict with Runner.predict's keys.
    status, body = server.post("/predict", {"inputs": TEXTS[0]})
    assert status == 200
    np.testing.assert_allclose(body["embedding"], _embeddings(minilm, TEXTS[:1])[0], atol=1e-6)


def test_predict_and_rerank_on_a_classifier(tsrun, classifier_pt):
    runner = tsrunner.Runner(classifier_pt, threads=1, kernel_path="default")
    with Server(tsrun, [classifier_pt], env=environment_without_api_key()) as server:
        status, body = server.post("/predict", {"inputs": TEXTS[0]})
        assert status == 200
        want = want_first = runner.predict([TEXTS[0]])[0]["labels"]
        assert [(s["label"], s["score"]) for s in body] == [
            (s["label"], pytest.approx(s["score"], abs=1e-6)) for s in want
        ]
        status, batch = server.post("/predict", {"inputs": [[t] for t in TEXTS]})
        assert status == 200 and len(batch) == len(TEXTS) and batch[0] == body
        status, pair = server.post("/predict", {"inputs": ["a question", "an answer"]})
        want = runner.predict(["a question"], text_pairs=["an answer"])[0]["labels"]
        assert status == 200 and pair[0]["score"] == pytest.approx(want[0]["score"], abs=1e-6)
        # raw_scores (TEI): the logits, best first; their softmax is the scores.
        status, raw = server.post("/predict", {"inputs": TEXTS[0], "raw_scores": True})
        assert status == 200 and [s["label"] for s in raw] == [s["label"] for s in want_first]
        logits = torch.tensor([s["score"] for s in raw], dtype=torch.float64)
        assert torch.softmax(logits, 0).tolist() == pytest.approx(
            [s["score"] for s in want_first], abs=1e-6
        )
        assert sum(s["score"] for s in raw) != pytest.approx(1.0)
        # Three labels: not a re-ranker.
        status, body = server.post("/rerank", {"query": "q", "texts": ["a"]})
        assert status == 424 and "re-ranker" in body["error"]


@pytest.fixture(scope="module")
def cross_encoder(tiny_bert_dir, tmp_path_factory):
    """A one-label reranker saved by sentence-transformers' CrossEncoder (sigmoid scores), the
    reference, and its export: (CrossEncoder, path)."""
    import sentence_transformers
    import transformers

    directory = tmp_path_factory.mktemp("cross_encoder")
    torch.manual_seed(7)
    config = transformers.AutoConfig.from_pretrained(tiny_bert_dir, num_labels=1)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(directory / "raw")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (directory / "raw" / name).write_bytes((tiny_bert_dir / name).read_bytes())
    sentence_transformers.CrossEncoder(str(directory / "raw"), device="cpu").save(
        str(directory / "ce")
    )
    reference = sentence_transformers.CrossEncoder(str(directory / "ce"), device="cpu")
    report = tsrunner.export(directory / "ce", directory / "reranker.pt", max_length=48)
    assert report.manifest["score_function"] == "sigmoid"
    return reference, report.output


def test_rerank_equals_cross_encoder(tsrun, cross_encoder):
    reference, path = cross_encoder
    query = sample_text.sample(1, offset=90)[0]
    passages = sample_text.sample(6, offset=200)
    expected = reference.predict([(query, passage) for passage in passages])
    ranked = reference.rank(query, passages, return_documents=True)
    with Server(tsrun, [path], env=environment_without_api_key()) as server:
        status, body = server.post("/rerank", {"query": query, "texts": passages})
        assert status == 200
        # TEI's shape: one {"index", "score"} per text, best first.
        assert all(set(rank) == {"index", "score"} for rank in body), body
        assert [rank["index"] for rank in body] == [rank["corpus_id"] for rank in ranked]
        for rank in body:
            assert rank["score"] == pytest.approx(float(expected[rank["index"]]), abs=1e-5)
        status, with_text = server.post(
            "/rerank", {"query": query, "texts": passages, "return_text": True}
        )
        assert status == 200
        assert [(r["index"], r["text"]) for r in with_text] == [
            (r["index"], passages[r["index"]]) for r in body
        ]
        assert list(with_text[0]) == ["index", "text", "score"]  # TEI's field order
        # raw_scores (TEI): the model's logits, before the sigmoid, in the same order.
        logits = reference.predict(
            [(query, passage) for passage in passages], activation_fn=torch.nn.Identity()
        )
        status, raw = server.post(
            "/rerank", {"query": query, "texts": passages, "raw_scores": True}
        )
        assert status == 200 and [r["index"] for r in raw] == [r["index"] for r in body]
        for rank in raw:
            assert rank["score"] == pytest.approx(float(logits[rank["index"]]), abs=1e-5)


def test_tokenize_matches_the_tokenizer(server, tokenizer):
    status, body = server.post("/tokenize", {"inputs": ["Hello, world!"]})
    assert status == 200
    encoding = tokenizer.encode("Hello, world!")
    assert [t["id"] for t in body[0]] == list(encoding.ids)
    assert body[0][1] == {
        "id": encoding.ids[1],
        "text": "Hello",
        "special": False,
        "start": 0,
        "stop": 5,
    }
    status, plain = server.post("/tokenize", {"inputs": "Hello", "add_special_tokens": False})
    assert status == 200 and [t["special"] for t in plain[0]] == [False]


def test_health_info_metrics(server):
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/v2/health/ready")[0] == 200
    status, _, info = server.request("GET", "/info")
    info = json.loads(info)
    assert status == 200 and info["model_id"] == "minilm" and info["max_input_length"] == 128
    assert [m["name"] for m in info["models"]] == ["minilm", "classifier"]
    assert [m["kernel_path"] for m in info["models"]] == [
        "default",
        "default",
    ]  # --kernel-path default
    server.post("/embed", {"inputs": "counted"})
    status, headers, text = server.request("GET", "/metrics")
    text = text.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'tsrun_requests_total{route="/embed",status="200"}' in text
    assert "tsrun_batch_inputs_bucket" in text and "tsrun_queue_depth" in text
    assert 'tsrun_request_duration_seconds_bucket{route="/embed"' in text


def test_requests_with_other_task_options_never_share_a_batch(tsrun, classifier_pt):
    # One pipeline serves requests with and without raw_scores; a batch holds inputs of one kind
    # only (issue 23: options travel with the request). One worker that waits 50 ms for more
    # inputs, so concurrent requests do meet in the queue.
    arguments = ["--workers", "1", "--max-wait-ms", "50"]
    with Server(tsrun, [classifier_pt], *arguments, env=environment_without_api_key()) as server:

        def ask(i):
            body = {"inputs": TEXTS[i % 4], "raw_scores": i % 2 == 1}
            return i % 2 == 1, server.post("/predict", body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(32)))
        for is_raw, (status, got) in answers:
            assert status == 200
            # Probabilities sum to 1; logits (raw_scores) do not.
            assert (sum(s["score"] for s in got) == pytest.approx(1.0, abs=1e-5)) != is_raw
        batches = _metric(server, "tsrun_batch_inputs_count")
        assert _metric(server, "tsrun_batch_inputs_sum") == 32 and batches < 32  # they met


def _metric(server, name: str) -> float:
    text = server.request("GET", "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_scheduler_runs_a_lone_request_at_once_and_pads_little(tsrun, minilm_pt, minilm):
    with Server(tsrun, [minilm_pt], "--workers", "1", env=environment_without_api_key()) as server:
        # Defaults: a lone request is not held to wait for others (it used to wait
        # --max-wait-ms, 2 ms, each: 20 ms over these 10).
        before = _metric(server, "tsrun_queue_seconds_sum")
        for text in TEXTS * 3:
            assert server.post("/embed", {"inputs": text})[0] == 200
        held = _metric(server, "tsrun_queue_seconds_sum") - before
        assert held < 0.015, f"12 lone requests waited {held:.4f} s in the queue"

        # One request's inputs are queued together. A long text would pad the short ones to its
        # length (5 x 100 tokens where they hold 4 x 4 + 100): it runs in a batch of its own.
        texts = ["one two", "three four", "five six", "seven", " ".join(["word"] * 98)]
        batches = _metric(server, "tsrun_batches_total")
        padded = _metric(server, "tsrun_batch_tokens_sum")
        status, body = server.post("/embed", {"inputs": texts})
        assert status == 200
        np.testing.assert_allclose(body, _embeddings(minilm, texts), rtol=1e-4, atol=1e-5)
        assert _metric(server, "tsrun_batches_total") - batches == 2
        assert _metric(server, "tsrun_batch_tokens_sum") - padded <= 4 * 5 + 100
        # One worker of one thread: --lone-batch-threads defaults to 1, nothing runs wider.
        assert _metric(server, "tsrun_lone_batches_total") == 0


# Two one-thread workers whose lone batches may take both cores.
LONE_BATCH_FLAGS = (
    "--workers",
    "2",
    "--threads",
    "1",
    "--lone-batch-threads",
    "2",
    "--kernel-path",
    "default",
)


def _loadavg_file(tmp_path, running: int):
    """A stand-in for /proc/loadavg (the test hook TSR_TEST_LOADAVG): `running` tasks runnable."""
    path = tmp_path / f"loadavg_{running}"
    path.write_text(f"0.50 0.40 0.30 {running}/200 12345\n")
    return {**environment_without_api_key(), "TSR_TEST_LOADAVG": str(path)}


def test_a_lone_request_runs_on_every_core_and_the_others_wait(tsrun, minilm_pt, minilm, tmp_path):
    with Server(tsrun, [minilm_pt], *LONE_BATCH_FLAGS, env=_loadavg_file(tmp_path, 1)) as server:
        # One request at a time on an idle machine: each is a batch alone, run on 2 intra-op
        # threads (which may split the sums differently from the Runner's 1 thread: last bits).
        for text in TEXTS:
            status, body = server.post("/embed", {"inputs": text})
            assert status == 200
            np.testing.assert_allclose(body, _embeddings(minilm, [text]), rtol=1e-4, atol=1e-6)
        assert _metric(server, "tsrun_lone_batches_total") == len(TEXTS)

        # Many at once: whatever comes while a lone batch runs waits for it, then the two workers
        # share the queue; every answer right, none stuck behind a waiting worker.
        answers: dict[int, list] = {}

        def client(index: int) -> None:
            for round_index in range(6):
                text = TEXTS[(index + round_index) % len(TEXTS)]
                status, body = server.post("/embed", {"inputs": text}, timeout=60)
                answers[index * 100 + round_index] = [status, text, body]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert len(answers) == 8 * 6
        for status, text, body in answers.values():
            assert status == 200
            np.testing.assert_allclose(body, _embeddings(minilm, [text]), rtol=1e-4, atol=1e-6)
        assert _metric(server, "tsrun_batches_total") >= _metric(server, "tsrun_lone_batches_total")


def test_a_lone_request_stays_on_one_thread_while_the_machine_is_busy(
    tsrun, minilm_pt, minilm, tmp_path
):
    # Other work runnable on the cores: a 2-thread team would wait for its descheduled member at
    # every barrier (measured ~40x slower), so lone requests run on --threads.
    with Server(tsrun, [minilm_pt], *LONE_BATCH_FLAGS, env=_loadavg_file(tmp_path, 6)) as server:
        for text in TEXTS:
            status, body = server.post("/embed", {"inputs": text})
            assert status == 200
            _assert_same_embeddings(body, _embeddings(minilm, [text]))
        assert _metric(server, "tsrun_batches_total") >= len(TEXTS)
        assert _metric(server, "tsrun_lone_batches_total") == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/embed", '{"inputs": ', 400, "malformed JSON"),
        ("/embed", '{"inputs": 1e309}', 400, "malformed JSON"),  # out of double's range
        ("/embed", "[]", 422, "must be a JSON object"),
        ("/embed", {"input": "wrong key"}, 422, "missing field `inputs`"),
        ("/embed", {"inputs": []}, 422, "cannot be empty"),
        ("/embed", {"inputs": [""]}, 422, "cannot be empty"),
        ("/embed", {"inputs": ["a", 3]}, 422, "`inputs[1]` must be a string"),
        ("/embed", {"inputs": ["x"] * 9}, 422, "batch size 9 > maximum allowed batch size 8"),
        ("/embed", {"inputs": "x", "normalize": "yes"}, 422, "`normalize` must be true or false"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "hex"}, 422, "encoding_format"),
        ("/predict", {"inputs": [["a", "b", "c"]]}, 422, "[text] or [text, pair]"),
        ("/predict", {"inputs": "a", "raw_scores": True}, 422, "text-classification exports"),
    ],
)
def test_invalid_requests(server, path, body, status, message):
    got, answer = server.post(path, body)
    assert got == status
    error = answer["error"]["message"] if path.startswith("/v1") else answer["error"]
    assert message in error
    if not path.startswith("/v1"):
        assert answer["error_type"] == "Validation"


def test_invalid_utf8_is_malformed_json_400(server):
    # JSON text is UTF-8: the parser refuses the body, naming the byte (docs/serve.md's table).
    status, _, body = server.request("POST", "/embed", b'{"inputs": "\xff\xfe"}')
    assert status == 400 and b"malformed JSON at byte 13" in body


def test_payload_and_header_limits(server):
    status, _, body = server.request("POST", "/embed", json.dumps({"inputs": "x" * 300_000}))
    assert status == 413 and b"larger than 200000 bytes" in body
    status, _, _ = server.request("GET", "/health", headers={"X-Big": "y" * 5000})
    assert status == 431
    assert server.request("GET", "/nope")[0] == 404
    assert server.request("GET", "/embed")[0] == 405
    assert server.request("GET", "/health")[0] == 200  # still serving


def test_slow_client_times_out(server):
    with socket.create_connection((server.host, server.port), timeout=10) as slow:
        slow.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5
    assert server.request("GET", "/health")[0] == 200


def test_api_key(tsrun, tiny_bert_pt):
    with Server(
        tsrun, [tiny_bert_pt], "--api-key", "s3cret", env=environment_without_api_key()
    ) as server:
        assert server.request("GET", "/health")[0] == 200  # health needs no key
        status, body = server.post("/embed", {"inputs": "x"})
        assert status == 401 and body["error_type"] == "Unauthorized"
        status, _ = server.post(
            "/embed", {"inputs": "x"}, headers={"Authorization": "Bearer wrong"}
        )
        assert status == 401
        assert server.request("GET", "/metrics")[0] == 401
        status, body = server.post(
            "/embed", {"inputs": "x"}, headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200 and len(body[0]) == 32


def test_overload_is_429_at_once_and_sigterm_finishes_in_flight(tsrun, tiny_bert_pt):
    # One model request at a time, and a worker that waits 1.5 s to fill its batch: the first
    # request is surely in flight while the others arrive.
    server = Server(
        tsrun,
        [tiny_bert_pt],
        "--max-concurrent-requests",
        "1",
        "--workers",
        "1",
        "--max-wait-ms",
        "1500",
        env=environment_without_api_key(),
    )
    try:
        idle = server.connection()
        idle.request("GET", "/health")  # a keep-alive connection, reused after SIGTERM
        assert idle.getresponse().read() == b""
        answers = []
        first = threading.Thread(
            target=lambda: answers.append(server.post("/embed", {"inputs": "slow"}))
        )
        first.start()
        deadline = time.monotonic() + 10
        while "tsrun_requests_in_flight 1" not in server.request("GET", "/metrics")[2].decode():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        status, body = server.post("/embed", {"inputs": "refused"})
        assert status == 429 and body["error_type"] == "Overloaded"
        assert time.monotonic() - started < 1.0  # at once, not queued
        server.terminate()
        time.sleep(0.2)
        idle.request("POST", "/embed", body=json.dumps({"inputs": "too late"}))
        late = idle.getresponse()
        assert late.status == 503 and json.loads(late.read())["error_type"] == "Unhealthy"
        first.join(timeout=30)
        assert answers and answers[0][0] == 200 and len(answers[0][1][0]) == 32
        assert server.wait(timeout=30) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.host, server.port), timeout=5)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--port", "70000", "an integer from 0 to 65535"),
        ("--workers", "abc", "an integer from 1 to 1024"),
        ("--threads", "0", "an integer from 1 to 1024"),
        ("--max-batch-tokens", "99999999999999999999999", "an integer from 1 to 16777216"),
        ("--max-wait-ms", "-1", "a number of milliseconds from 0 to 10000"),
        ("--max-wait-ms", "nan", "a number of milliseconds from 0 to 10000"),
    ],
)
def test_flag_out_of_range_is_one_line(tsrun, tmp_path, flag, value, allowed):
    model = tmp_path / "never_loaded.pt"
    result = subprocess.run([tsrun, "serve", model, flag, value], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f'tsrun: error: {flag}: "{value}" is not {allowed}\n'
    assert result.stdout == ""
