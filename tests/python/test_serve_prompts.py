"""Prompts on /embed (TEI's prompt_name) and /v1/embeddings (issue 24 item 2): applied exactly
as Runner.predict(prompt_name=) and SentenceTransformer.encode(prompt_name=); an unknown name is
a 422 naming the model's prompts."""

from __future__ import annotations

import numpy as np
import pytest

import tsrunner
from serve_process import Server, environment_without_api_key
from test_sentence_transformers import save_sentence_transformer
from tsrunner import sample_text

TEXTS = sample_text.sample(3, offset=40)


@pytest.fixture(scope="module")
def prompted(tiny_bert_dir, tmp_path_factory):
    """A sentence-transformers model with prompts and a default prompt (not normalised, so
    a prompt that was not applied cannot hide behind unit length), its export and a server."""
    pytest.importorskip("sentence_transformers")
    directory = tmp_path_factory.mktemp("prompted") / "prompted"
    reference = save_sentence_transformer(
        tiny_bert_dir,
        directory,
        "mean",
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name="query",
    )
    path = tsrunner.export(directory, directory.parent / "prompted.pt").output
    return reference, tsrunner.Runner(path), path


@pytest.fixture(scope="module")
def server(tsrun, prompted):
    with Server(tsrun, [prompted[2]], env=environment_without_api_key()) as running:
        yield running


def _unit(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("prompt_name", [None, "query", "passage", "document"])
def test_embed_applies_the_prompt_as_runner_predict(server, prompted, prompt_name):
    reference, runner, _ = prompted
    body = {"inputs": TEXTS, "normalize": False}
    if prompt_name is not None:
        body["prompt_name"] = prompt_name
    status, got = server.post("/embed", body)
    assert status == 200, got
    want = [p["embedding"] for p in runner.predict(TEXTS, prompt_name=prompt_name)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    encoded = reference.encode(TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
    np.testing.assert_allclose(got, encoded, atol=1e-4)


def test_the_prompt_changes_the_embedding(server):
    _, query = server.post("/embed", {"inputs": TEXTS, "prompt_name": "query"})
    _, passage = server.post("/embed", {"inputs": TEXTS, "prompt_name": "passage"})
    assert np.abs(np.asarray(query) - np.asarray(passage)).max() > 1e-3


def test_an_unknown_prompt_name_is_a_422_naming_the_known_ones(server):
    for route, body in (
        ("/embed", {"inputs": TEXTS, "prompt_name": "summary"}),
        ("/v1/embeddings", {"input": TEXTS, "prompt_name": "summary"}),
    ):
        status, answer = server.post(route, body)
        assert status == 422, (route, answer)
        error = answer["error"]
        message = error["message"] if isinstance(error, dict) else error  # OpenAI's shape
        assert 'unknown prompt name "summary"' in message, route
        assert "document, passage, query" in message, route
    status, answer = server.post("/embed", {"inputs": TEXTS, "prompt_name": 3})
    assert status == 422 and "`prompt_name` must be a string" in answer["error"]


def test_openai_embeddings_take_prompt_name(server, prompted):
    openai = pytest.importorskip("openai")
    _, runner, _ = prompted
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    for prompt_name in (None, "passage"):
        extra = {"prompt_name": prompt_name} if prompt_name else None
        response = client.embeddings.create(
            model="prompted", input=TEXTS, encoding_format="float", extra_body=extra
        )
        got = np.array([item.embedding for item in response.data])
        want = [p["embedding"] for p in runner.predict(TEXTS, prompt_name=prompt_name)]
        np.testing.assert_allclose(got, _unit(want), atol=1e-5)  # OpenAI's are unit vectors


def test_prompt_name_on_a_model_without_prompts_is_a_422(tsrun, tiny_bert_pt):
    """A plain encoder export (mean pooling, no sentence-transformers pipeline)."""
    with Server(tsrun, [tiny_bert_pt], env=environment_without_api_key()) as running:
        status, answer = running.post("/embed", {"inputs": TEXTS, "prompt_name": "query"})
        assert status == 422 and "has no prompts" in answer["error"], answer
        status, _ = running.post("/embed", {"inputs": TEXTS})
        assert status == 200
