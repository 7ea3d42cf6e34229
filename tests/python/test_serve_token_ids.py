"""/v1/embeddings takes token-id inputs as OpenAI and TEI do (issue 24 item 5): a list of ids is
one input, a list of such lists one input each, taken as they are (the client's tokens, special
tokens included); the embeddings equal those of the texts the ids came from."""

from __future__ import annotations

import numpy as np
import pytest

import tsrunner
from serve_process import Server, environment_without_api_key
from tsrunner import sample_text

TEXTS = sample_text.sample(3, offset=60)


@pytest.fixture(scope="module")
def served(tsrun, tiny_bert_pt):
    tokenizer = tsrunner.Tokenizer.from_file(tiny_bert_pt)
    with Server(tsrun, [tiny_bert_pt], env=environment_without_api_key()) as server:
        yield server, tokenizer, tsrunner.Runner(tiny_bert_pt).manifest


def _embeddings(answer) -> np.ndarray:
    return np.array([item["embedding"] for item in answer["data"]])


def test_token_ids_embed_as_the_text_they_came_from(served):
    server, tokenizer, _ = served
    ids = [list(tokenizer.encode(text).ids) for text in TEXTS]
    status, from_text = server.post("/v1/embeddings", {"input": TEXTS})
    assert status == 200, from_text
    status, from_ids = server.post("/v1/embeddings", {"input": ids})
    assert status == 200, from_ids
    np.testing.assert_allclose(_embeddings(from_ids), _embeddings(from_text), atol=1e-6)
    assert (
        from_ids["usage"]
        == from_text["usage"]
        == {
            "prompt_tokens": sum(map(len, ids)),
            "total_tokens": sum(map(len, ids)),
        }
    )
    status, one = server.post("/v1/embeddings", {"input": ids[0]})  # a flat list: one input
    assert status == 200 and len(one["data"]) == 1
    np.testing.assert_allclose(_embeddings(one)[0], _embeddings(from_text)[0], atol=1e-6)


def test_the_openai_client_sends_token_ids(served):
    openai = pytest.importorskip("openai")
    server, tokenizer, _ = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    ids = [list(tokenizer.encode(text).ids) for text in TEXTS]
    by_ids = client.embeddings.create(model="tiny_bert", input=ids, encoding_format="float")
    by_text = client.embeddings.create(model="tiny_bert", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(
        [item.embedding for item in by_ids.data],
        [item.embedding for item in by_text.data],
        atol=1e-6,
    )


def test_bad_token_ids_are_a_422_naming_the_input(served):
    server, _, manifest = served
    vocab = manifest["vocab_size"]
    too_long = [101] * (manifest["max_length"] + 1)
    for body, expected in (
        ({"input": [[101, 2040, 102], [101, vocab, 102]]}, f"`input[1]`[1] = {vocab} is not"),
        ({"input": [101, -1, 102]}, "`input`[1] = -1 is not a token id"),
        ({"input": [101, "a"]}, "`input`[1] must be an integer token id"),
        ({"input": [[101], []]}, "`input[1]` must be a non-empty list of token ids"),
        ({"input": [101, 2.5]}, "`input`[1] must be an integer token id"),
        ({"input": too_long}, f"tokens; the model takes at most {manifest['max_length']}"),
        ({"input": [101, 102], "prompt_name": "query"}, "`prompt_name`"),
    ):
        status, answer = server.post("/v1/embeddings", body)
        assert status == 422, (body, answer)
        assert expected in answer["error"]["message"], (body, answer)
