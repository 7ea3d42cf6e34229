"""RunnerOptions through the Python binding: tuning changes speed, never the answer."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

import tsrunner


def _inputs():
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2088, 2003, 1037, 102]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize(
    "options",
    [
        {"warmup_runs": 2},
        {"freeze": True},
        {"optimize_graph": False},
        {"warmup_runs": 1, "freeze": True, "optimize_graph": False},
    ],
)
def test_tuned_runner_gives_the_default_answer(tiny_bert_pt, options):
    expected = tsrunner.Runner(tiny_bert_pt, threads=1).run(_inputs())
    tuned = tsrunner.Runner(tiny_bert_pt, threads=1, **options)
    got = tuned.run(_inputs())
    assert list(got) == list(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_graph_optimisation_is_the_runners_own_and_leaves_the_callers_thread_alone(tiny_bert_pt):
    # LibTorch keeps the switch per thread: the runner sets it around its own calls only.
    assert torch._C._get_graph_executor_optimize()
    plain = tsrunner.Runner(tiny_bert_pt, threads=1, optimize_graph=False)
    assert torch._C._get_graph_executor_optimize()  # not left off by loading
    expected = plain.run(_inputs())
    assert torch._C._get_graph_executor_optimize()  # nor by running
    got = {}
    thread = threading.Thread(target=lambda: got.update(plain.run(_inputs())))
    thread.start()
    thread.join()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"warmup_runs": -1}, "warmup_runs must be 0 or positive"),
        ({"interop_threads": -2}, "interop_threads must be 0 (default) or positive"),
    ],
)
def test_bad_options_raise_value_error(tiny_bert_pt, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tsrunner.Runner(tiny_bert_pt, **options)


def test_interop_threads_apply_once_per_process(tiny_bert_pt):
    # Inter-op threads are process-wide in LibTorch: a fresh process shows both behaviours.
    script = f"""
import tsrunner, torch
runner = tsrunner.Runner({str(tiny_bert_pt)!r}, interop_threads=1, warmup_runs=1)
assert torch.get_num_interop_threads() == 1
tsrunner.Runner({str(tiny_bert_pt)!r}, interop_threads=1)  # the same value is fine
try:
    tsrunner.Runner({str(tiny_bert_pt)!r}, interop_threads=2)
except ValueError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "interop_threads=2 cannot be applied: this process already uses 1" in result.stdout
