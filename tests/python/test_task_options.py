"""Per-call task options that every entry point shares: `normalize` and `truncate`
(text-embeddings-inference's per-request options), applied once, in the library."""

from __future__ import annotations

import numpy as np
import pytest

import tsrunner

LONG_TEXT = " ".join(["token"] * 400)  # over both exports' max length


def _vector(prediction: dict) -> np.ndarray:
    return np.asarray(prediction["embedding"], dtype=np.float32)


def test_normalize_on_an_export_that_pools_without_normalising(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt, threads=1, kernel_path="default")
    text = "mean pooled, not normalised"
    plain = _vector(runner.predict(text)[0])
    assert abs(float(np.linalg.norm(plain)) - 1.0) > 1e-3  # the export's own: not unit length
    assert np.array_equal(_vector(runner.predict(text, normalize=False)[0]), plain)
    unit = _vector(runner.predict(text, normalize=True)[0])
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain), rtol=1e-5, atol=1e-7)


def test_normalize_on_an_export_that_normalises_in_its_graph(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1, kernel_path="default")
    text = "all-MiniLM-L6-v2 ends with a Normalize module"
    own = _vector(runner.predict(text)[0])
    # Already unit vectors: asking for them changes no bit (no second normalisation).
    assert np.array_equal(_vector(runner.predict(text, normalize=True)[0]), own)
    with pytest.raises(
        ValueError,
        match=r"normalises inside its graph \(the sentence-transformers Normalize module\)",
    ):
        runner.predict(text, normalize=False)


def test_truncate_false_refuses_a_text_over_the_max_length(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1, kernel_path="default")
    cut = runner.predict(LONG_TEXT)[0]
    assert np.array_equal(_vector(runner.predict(LONG_TEXT, truncate=True)[0]), _vector(cut))
    with pytest.raises(
        ValueError,
        match=r"text 1: the text is longer than the model's 128 tokens \(truncate=false\)",
    ):
        runner.predict(["short", LONG_TEXT], truncate=False)
    # A text that fits is not affected.
    assert np.array_equal(
        _vector(runner.predict("short", truncate=False)[0]), _vector(runner.predict("short")[0])
    )


def test_bad_option_values_are_refused(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1)
    with pytest.raises(ValueError, match="normalize must be a bool"):
        runner.predict("x", normalize="yes")
    with pytest.raises(ValueError, match="truncate must be a bool"):
        runner.predict("x", truncate=1)
