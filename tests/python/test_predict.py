"""Runner.predict (feature-extraction) against sentence-transformers on the real MiniLM."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tsrunner
from tsrunner import sample_text


@pytest.fixture(scope="module")
def sentence_transformer(minilm_dir):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="module")
def minilm_runner(minilm_pt):
    return tsrunner.Runner(minilm_pt, threads=2)


def test_embeddings_match_sentence_transformers(minilm_runner, sentence_transformer):
    texts = [*sample_text.sample(150, offset=100), "", "Jim Henson was a puppeteer", "中文 café"]
    expected = sentence_transformer.encode(texts, batch_size=32, convert_to_numpy=True)
    results = minilm_runner.predict(texts, batch_size=16)
    actual = np.array([result["embedding"] for result in results], dtype=np.float32)
    assert actual.shape == expected.shape == (len(texts), 384)
    cosine = (actual * expected).sum(1) / (
        np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.9999
    assert np.abs(actual - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-5)  # normalised as configured


def test_order_and_batch_size_do_not_change_answers(minilm_runner):
    texts = sample_text.sample(40, offset=7)
    one_batch = minilm_runner.predict(texts, batch_size=64)
    small_batches = minilm_runner.predict(texts, batch_size=3)
    reversed_order = minilm_runner.predict(texts[::-1], batch_size=5)[::-1]
    for a, b, c in zip(one_batch, small_batches, reversed_order, strict=True):
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-5)
        assert np.allclose(a["embedding"], c["embedding"], atol=1e-5)


def test_concurrent_batches_give_the_serial_answers(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1)
    texts = sample_text.sample(50, offset=300)
    serial = runner.predict(texts, batch_size=4)
    for concurrent in (2, 5):
        parallel = runner.predict(texts, batch_size=4, concurrent_batches=concurrent)
        for a, b in zip(serial, parallel, strict=True):
            assert a["embedding"] == b["embedding"]  # one intra-op thread each: same kernels


def test_pairs_and_single_string(minilm_runner, sentence_transformer):
    single = minilm_runner.predict("Who was Jim Henson?")
    assert len(single) == 1 and len(single[0]["embedding"]) == 384
    paired = minilm_runner.predict(["Who was Jim Henson?"], ["A puppeteer."])
    assert not np.allclose(single[0]["embedding"], paired[0]["embedding"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.predict([1, 2]), "texts\\[0\\] must be a str"),
        (lambda r: r.predict(["a", "b"], ["c"]), "2 texts but 1 text pairs"),
        (lambda r: r.predict(["a"], batch_size=0), "batch_size must be a positive int"),
        (lambda r: r.predict(["a"], concurrent_batches=0), "concurrent_batches must be an int"),
        (lambda r: r.predict(["a"], concurrent_batches=1.5), "concurrent_batches must be an int"),
        (lambda r: r.predict(["a"], concurrent_batches=1025), "from 1 to 1024, not 1025"),
        (lambda r: r.predict(["a"], doc_stride=2**64), "doc_stride must be an int"),
    ],
)
def test_bad_input_is_value_error(minilm_runner, call, message):
    with pytest.raises(ValueError, match=message):
        call(minilm_runner)
    assert len(minilm_runner.predict(["still usable"])) == 1
