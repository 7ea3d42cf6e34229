"""Text where clients send text: BYTES tensors on the Open Inference Protocol (Triton's own HTTP
client), /tokenize on every export with a tokenizer, and `tsrun --text ... --tokens`."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import tsrunner
from conftest import _load_data_module
from serve_process import Server, environment_without_api_key

TEXTS = ["The quick brown fox jumps over the lazy dog.", "short", "Triton sends text as BYTES."]
PAIRS = ["A fox is quick.", "long", "KServe too."]


@pytest.fixture(scope="module")
def models(tmp_path_factory, minilm_pt, classifier_pt, tiny_bert_dir):
    work = tmp_path_factory.mktemp("v2_text")
    gpt2_dir = _load_data_module("tiny_decoders").make_decoder("gpt2", work / "gpt2")
    tsrunner.export(gpt2_dir, work / "gpt2.pt", task="causal-lm", max_length=16)
    bare = work / "bare"  # the model without its tokenizer files
    shutil.copytree(tiny_bert_dir, bare, ignore=shutil.ignore_patterns("*token*", "vocab.txt"))
    tsrunner.export(bare, work / "bare.pt", max_length=32)
    return {
        "gpt2": work / "gpt2.pt",
        "minilm": minilm_pt,
        "classifier": classifier_pt,
        "bare": work / "bare.pt",
    }


@pytest.fixture(scope="module")
def server(tsrun, models):
    # GPT-2 first: /tokenize answers for the first model.
    paths = [models[name] for name in ("gpt2", "minilm", "classifier", "bare")]
    with Server(
        tsrun, paths, "--kernel-path", "default", env=environment_without_api_key()
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"{server.host}:{server.port}")
    yield client
    client.close()


def _text_input(name, texts, binary):
    import tritonclient.http as triton

    tensor = triton.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    return tensor


def _strings(result, name):
    return [json.loads(item) for item in result.as_numpy(name)]


@pytest.mark.parametrize("binary", [False, True])
def test_embedding_model_answers_text_like_predict(client, models, binary):
    import tritonclient.http as triton

    runner = tsrunner.Runner(models["minilm"], kernel_path="default")
    want = runner.predict(TEXTS)
    outputs = [
        triton.InferRequestedOutput("embedding", binary_data=binary),
        triton.InferRequestedOutput("prediction", binary_data=binary),
    ]
    result = client.infer("minilm", [_text_input("text", TEXTS, binary)], outputs=outputs)
    embedding = result.as_numpy("embedding")
    assert embedding.dtype == np.float32 and embedding.shape == (3, 384)
    np.testing.assert_allclose(embedding, [p["embedding"] for p in want], rtol=0, atol=1e-6)
    predictions = _strings(result, "prediction")
    np.testing.assert_allclose(
        [p["embedding"] for p in predictions], [p["embedding"] for p in want], atol=1e-6
    )


@pytest.mark.parametrize("binary", [False, True])
def test_classifier_answers_text_pairs_with_scores_in_label_order(client, models, binary):
    runner = tsrunner.Runner(models["classifier"], kernel_path="default")
    labels = runner.manifest["labels"]
    want = runner.predict(TEXTS, text_pairs=PAIRS)
    inputs = [_text_input("text", TEXTS, binary), _text_input("text_pair", PAIRS, binary)]
    result = client.infer("classifier", inputs)  # every output
    scores = result.as_numpy("scores")
    assert scores.shape == (3, len(labels))
    for row, prediction in zip(scores, want, strict=True):
        by_label = {item["label"]: item["score"] for item in prediction["labels"]}
        np.testing.assert_allclose(row, [by_label[label] for label in labels], atol=1e-6)
    # "prediction" is what /predict answers for each input: labels and scores, best first.
    for got, prediction in zip(_strings(result, "prediction"), want, strict=True):
        assert [item["label"] for item in got] == [item["label"] for item in prediction["labels"]]


def test_metadata_lists_the_text_inputs_and_outputs(client, models):
    for name, text_inputs, text_outputs in [
        ("minilm", ["text"], ["embedding", "prediction"]),
        ("classifier", ["text", "text_pair"], ["scores", "prediction"]),
        ("gpt2", [], []),
        ("bare", [], []),
    ]:
        manifest = tsrunner.read_manifest(models[name])
        metadata = client.get_model_metadata(name)
        tensors = [spec["name"] for spec in manifest["inputs"]]
        assert [i["name"] for i in metadata["inputs"]] == tensors + text_inputs, name
        outputs = [spec["name"] for spec in manifest["outputs"]]
        assert [o["name"] for o in metadata["outputs"]] == outputs + text_outputs, name
        for spec in metadata["inputs"][len(tensors) :]:
            assert spec["datatype"] == "BYTES" and spec["shape"] == [-1]


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        ("bare", {"text": ["hi"]}, 'model "bare" takes no text (BYTES) input: it embeds no '),
        ("bare", {"text": ["hi"]}, "send the token ids as tensors instead: input_ids (int64)"),
        ("gpt2", {"text": ["hi"]}, "(causal-lm) has no task-aware output"),
        ("gpt2", {"text": ["hi"]}, "(POST /tokenize gives the ids)"),
        ("minilm", {"text": ["a"], "text_pair": ["b"]}, "(task feature-extraction takes no pairs)"),
        ("classifier", {"text_pair": ["b"]}, 'input "text" is missing'),
        ("classifier", {"text": ["a", "b"], "text_pair": ["c"]}, "give one pair per text"),
        ("minilm", {"text": [""]}, 'input "text"[0] cannot be empty'),
    ],
)
def test_text_the_model_cannot_take_is_refused_saying_what_to_send(server, model, inputs, message):
    body = {
        "inputs": [
            {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": values}
            for name, values in inputs.items()
        ]
    }
    status, answer = server.post(f"/v2/models/{model}/infer", body)
    assert status == 400, answer
    assert message in answer["error"], answer


def test_binary_bytes_that_overrun_are_refused(server):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 6},
                }
            ]
        }
    ).encode()
    body = header + (100).to_bytes(4, "little") + b"hi"
    status, _, data = server.request(
        "POST",
        "/v2/models/minilm/infer",
        body,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 400 and b"exceeds the data left" in data


def test_tokenize_answers_for_a_generation_export(server, models):
    tokenizer = tsrunner.Tokenizer.from_file(models["gpt2"])
    status, answer = server.post("/tokenize", {"inputs": ["Return a new list"]})
    assert status == 200, answer
    assert [token["id"] for token in answer[0]] == tokenizer.encode("Return a new list").ids


def test_tsrun_tokens_prints_the_ids_by_the_models_input_names(tsrun, models, tiny_bert_pt):
    for path in (models["minilm"], models["classifier"], tiny_bert_pt):
        result = subprocess.run(
            [tsrun, path, "--text", TEXTS[0], "--text", TEXTS[1], "--tokens"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        manifest = tsrunner.read_manifest(path)
        tokenizer = tsrunner.Tokenizer.from_file(path)
        assert len(lines) == 2
        for line, text in zip(lines, TEXTS[:2], strict=True):
            assert list(line) == [spec["name"] for spec in manifest["inputs"]]
            encoding = tokenizer.encode(text)
            assert line["input_ids"] == list(encoding.ids)
            assert line["attention_mask"] == list(encoding.attention_mask)
    # The ids run as they are.
    ids = ",".join(map(str, lines[0]["input_ids"]))
    raw = subprocess.run([tsrun, path, "--ids", ids, "--raw"], capture_output=True, text=True)
    assert raw.returncode == 0, raw.stderr
    pair = subprocess.run(
        [tsrun, tiny_bert_pt, "--text", "a", "--text-pair", "b", "--tokens"],
        capture_output=True,
        text=True,
    )
    assert json.loads(pair.stdout)["token_type_ids"][-2:] == [1, 1]
    refused = subprocess.run(
        [tsrun, models["bare"], "--text", "a", "--tokens"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "embeds no tokenizer" in refused.stderr
