"""Runner.predict from many Python threads goes through libtsrunner's RequestQueue: the calls
are batched together (counted by the queue) and each gets the answer a serial call gets."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import tsrunner

CALLERS = 16


def _text(i: int) -> str:
    return f"caller {i} asks" + " and asks again" * (i % 4)


def _embedding(prediction: dict) -> np.ndarray:
    return np.asarray(prediction["embedding"], dtype=np.float32)


def _call_at_once(runner) -> list[np.ndarray]:
    """Each of CALLERS threads predicts one text, all released at once."""
    answers: list[np.ndarray | None] = [None] * CALLERS
    errors: list[BaseException] = []
    start = threading.Barrier(CALLERS)

    def call(i: int) -> None:
        try:
            start.wait()
            answers[i] = _embedding(runner.predict(_text(i))[0])
        except BaseException as error:  # reported by the main thread below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a caller hung"
    assert errors == []
    return answers


def test_sixteen_threads_are_batched_and_get_the_serial_answers(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1)
    serial = [_embedding(runner.predict(_text(i))[0]) for i in range(CALLERS)]
    before = runner.queue_stats()
    assert before["batches"] == before["submissions"] == CALLERS  # serial calls: one each

    # Callers released at once submit while the first batch runs, so the rest meet in the queue.
    # The machine is shared: a round where every caller happened to come alone is tried again.
    for _ in range(3):
        round_start = runner.queue_stats()
        answers = _call_at_once(runner)
        stats = runner.queue_stats()
        assert stats["submissions"] - round_start["submissions"] == CALLERS
        assert stats["batched_inputs"] - round_start["batched_inputs"] == CALLERS
        for i in range(CALLERS):
            # A text batched with others pads and rounds differently (oneDNN's results depend
            # on the batch's shape): equal up to float32 rounding.
            np.testing.assert_allclose(answers[i], serial[i], rtol=1e-5, atol=1e-6)
        if stats["batches"] - round_start["batches"] < CALLERS:
            break
    else:
        pytest.fail(f"16 concurrent callers were never batched together: {stats}")
    assert stats["largest_batch"] >= 2


def test_a_runner_that_predicted_is_freed(minilm_pt):
    # Runner -> pipeline -> queue -> runner is a cycle the garbage collector can see and free
    # (it used to be hidden in pybind11's keep_alive, so the model stayed loaded forever).
    runner = tsrunner.Runner(minilm_pt, threads=1)
    runner.predict("one call starts the queue's worker")
    gone = weakref.ref(runner)
    del runner
    gc.collect()
    assert gone() is None


def test_a_thousand_texts_in_one_call_keep_their_order(minilm_pt):
    runner = tsrunner.Runner(minilm_pt, threads=1, kernel_path="default")
    texts = [_text(i % 7) + f" number {i}" for i in range(1000)]
    answers = runner.predict(texts, batch_size=64)
    stats = runner.queue_stats()
    assert stats["inputs"] == 1000 and stats["largest_batch"] <= 64
    for i in (0, 1, 500, 999):
        one = runner.predict(texts[i])[0]
        np.testing.assert_allclose(_embedding(answers[i]), _embedding(one), rtol=1e-5, atol=1e-6)
