"""RunnerOptions through the Python binding: tuning changes speed, never the answer."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import tsrunner
from tsrunner import _core
from tsrunner import runner as runner_module


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


# --- RunnerOptions reaches Python whole (issue 11.4) ----------------------------------------

_HEADER = Path(__file__).resolve().parents[2] / "cpp" / "include" / "tsrunner" / "options.h"


def _cpp_option_fields() -> list[str]:
    """The data members of tsrunner::RunnerOptions, read from the public header."""
    text = _HEADER.read_text()
    body = text[text.index("struct TSR_API RunnerOptions {") : text.index("void validate() const;")]
    return re.findall(
        r"^\s+(?:int|bool|uint64_t|std::string|std::optional<[\w:]+>)\s+(\w+)\s*[=;]",
        body,
        re.MULTILINE,
    )


# A value other than the default for every field, valid for loading tiny_bert.
def _cpu_has_bf16() -> bool:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
    return "avx2" in flags and ("avx512_bf16" in flags or "amx_bf16" in flags)


def _non_default_values(tiny_bert_pt) -> dict:
    return {
        "threads": 1,
        "interop_threads": torch.get_num_interop_threads(),  # process-wide: keep the current
        "device": "cpu:0",
        "warmup_runs": 1,
        "warmup_sequence": 8,
        "optimize_graph": False,
        "freeze": True,
        # compute="bf16" needs the oneDNN kernel path and a CPU with bf16 instructions.
        "kernel_path": "onednn" if _cpu_has_bf16() else "default",
        "compute": "bf16",
        "fused_attention": "op",
        "fused_layer_norm": False,
        "bf16_kernel": False,
        "small_gemm_rows": 16,
        "max_archive_bytes": 1 << 30,
        "max_embedded_file_bytes": 32 << 20,
        "verify_integrity": False,
        "expected_sha256": tsrunner.verify_archive(tiny_bert_pt),
    }


def test_every_cpp_option_is_bound_and_accepted_by_runner():
    fields = _cpp_option_fields()
    assert len(fields) >= 11
    assert set(runner_module.OPTION_NAMES) == set(fields)
    keywords = inspect.signature(tsrunner.Runner.__init__).parameters
    deprecated = {"engine"}  # kernel_path's first name, still accepted with a warning
    assert {name for name in keywords if name not in ("self", "path", "unknown")} == set(
        fields
    ) | deprecated


def test_every_option_round_trips_through_a_runner(tiny_bert_pt):
    values = _non_default_values(tiny_bert_pt)
    assert set(values) == set(_cpp_option_fields())
    defaults = tsrunner.RunnerOptions()
    for name, value in values.items():
        assert getattr(defaults, name) != value, f"{name}: pick a value other than the default"
    # Elsewhere bf16 is refused at load (test_bf16_compute.py): it round-trips through
    # RunnerOptions below only.
    loadable = values if _cpu_has_bf16() else {k: v for k, v in values.items() if k != "compute"}
    runner = tsrunner.Runner(tiny_bert_pt, **loadable)
    loaded = runner.options
    for name, value in loadable.items():
        assert getattr(loaded, name) == value, name
    options = tsrunner.RunnerOptions()
    for name, value in values.items():
        setattr(options, name, value)
        assert getattr(options, name) == value, name


@pytest.mark.parametrize("keyword", ["thread", "verify", "warmup"])
def test_an_unknown_option_is_named_in_one_line(tiny_bert_pt, keyword):
    with pytest.raises(TypeError) as raised:
        tsrunner.Runner(tiny_bert_pt, **{keyword: 2})
    message = str(raised.value)
    assert "\n" not in message
    assert repr(keyword) in message
    assert "valid options: threads, interop_threads" in message


def test_a_misspelt_option_gets_a_suggestion(tiny_bert_pt):
    with pytest.raises(TypeError, match=r"unknown Runner option 'thread' \(did you mean 'threads'"):
        tsrunner.Runner(tiny_bert_pt, thread=2)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"threads": "2"}, TypeError, "threads must be int, not '2'"),
        ({"threads": True}, TypeError, "threads must be int, not True"),
        ({"freeze": 1}, TypeError, "freeze must be bool, not 1"),
        ({"max_archive_bytes": -1}, ValueError, r"max_archive_bytes=-1 is out of range"),
        ({"threads": 2**40}, ValueError, r"threads=1099511627776 is out of range"),
    ],
)
def test_option_types_are_checked_in_one_line(tiny_bert_pt, options, error, message):
    with pytest.raises(error, match=message):
        tsrunner.Runner(tiny_bert_pt, **options)


@pytest.mark.parametrize("threads", [20000, 100000])
def test_absurd_thread_counts_are_refused_before_anything_starts(tiny_bert_pt, threads):
    # 100000 crashed LibTorch and 20000 printed a libgomp error before the cap.
    with pytest.raises(tsrunner.InvalidInput, match=f"threads must be at most 1024, not {threads}"):
        tsrunner.Runner(tiny_bert_pt, threads=threads)
    with pytest.raises(ValueError, match="interop_threads must be at most 1024"):
        tsrunner.Runner(tiny_bert_pt, interop_threads=threads)
    assert _core.MAX_THREADS == 1024


def test_tsrun_refuses_absurd_thread_counts(tiny_bert_pt, tsrun):
    result = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", "--threads", "100000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # tsrun checks the flag itself (test_tsrun_edge_cases.py); the library's cap is the same.
    assert result.returncode == 2, result.stderr
    assert "100000" in result.stderr and "1024" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_invalid_input_is_both_a_tsrunner_error_and_a_value_error(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt, threads=1)
    bad = {"input_ids": torch.tensor([[101, 10**9, 102]])}
    with pytest.raises(tsrunner.Error):
        runner.run(bad)
    with pytest.raises(ValueError):
        runner.run(bad)
    try:
        runner.run(bad)
    except tsrunner.Error as error:  # the way callers catch everything tsrunner raises
        assert isinstance(error, tsrunner.InvalidInput)
        assert isinstance(error, ValueError)
    assert issubclass(tsrunner.InvalidInput, tsrunner.Error)
    assert issubclass(tsrunner.LoadError, tsrunner.Error)
    assert not issubclass(tsrunner.LoadError, ValueError)


def test_threads_belong_to_the_runner_not_the_process(tiny_bert_pt):
    # Loading and running a Runner with its own thread count leaves the calling thread's (and
    # so torch's) count alone; two runners with different counts coexist (issue 28).
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    one = tsrunner.Runner(tiny_bert_pt, threads=wanted)
    other = tsrunner.Runner(tiny_bert_pt, threads=wanted + 1)
    expected = one.run(_inputs())
    assert torch.get_num_threads() == before
    for runner in (one, other, one):
        outputs = runner.run(_inputs())
        assert torch.get_num_threads() == before
    for name, tensor in expected.items():
        torch.testing.assert_close(outputs[name], tensor, rtol=0, atol=1e-5)
    assert (one.options.threads, other.options.threads) == (wanted, wanted + 1)


def test_engine_is_kernel_paths_deprecated_name(tiny_bert_pt):
    """ "Engine" names the executor (TorchScript or AOTInductor) now; the kernel path's first
    name still works, with a DeprecationWarning, and means the same."""
    with pytest.warns(DeprecationWarning, match="use kernel_path="):
        runner = tsrunner.Runner(tiny_bert_pt, threads=1, engine="default")
    assert runner.options.kernel_path == "default" and runner.kernel_path == "default"
    with pytest.warns(DeprecationWarning, match="use kernel_path"):
        assert runner.engine == runner.kernel_path
    with pytest.warns(DeprecationWarning, match="use kernel_path_reason"):
        assert runner.engine_reason == runner.kernel_path_reason
    with pytest.warns(DeprecationWarning, match="use tsrunner.auto_kernel_path"):
        assert tsrunner.auto_engine() == tsrunner.auto_kernel_path()
    with pytest.raises(TypeError, match="not both"), pytest.warns(DeprecationWarning):
        tsrunner.Runner(tiny_bert_pt, engine="default", kernel_path="onednn")
