"""tsrun's command line: help, version, info, and one-line errors with documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import tsrunner


def _tsrun(tsrun, *args, env=None):
    return subprocess.run([tsrun, *map(str, args)], capture_output=True, text=True, env=env)


def test_help_and_version(tsrun):
    help_result = _tsrun(tsrun, "--help")
    assert help_result.returncode == 0
    assert "--ids" in help_result.stdout and "info" in help_result.stdout
    assert "Exit codes" in help_result.stdout
    version = _tsrun(tsrun, "--version")
    assert version.returncode == 0 and tsrunner.__version__ in version.stdout


def test_info_prints_the_manifest(tsrun, tiny_bert_pt):
    result = _tsrun(tsrun, "info", tiny_bert_pt)
    assert result.returncode == 0, result.stderr
    assert "task        feature-extraction" in result.stdout
    assert "input_ids int64 [batch, sequence]" in result.stdout
    assert "shapes      dynamic: sequence 1..64" in result.stdout
    as_json = _tsrun(tsrun, "info", tiny_bert_pt, "--json")
    assert json.loads(as_json.stdout) == tsrunner.read_manifest(tiny_bert_pt)


def test_python_and_native_info_print_the_same_summary(tsrun, tiny_bert_pt):
    native = _tsrun(tsrun, "info", tiny_bert_pt).stdout
    python = subprocess.run(
        [sys.executable, "-m", "tsrunner", "info", str(tiny_bert_pt)],
        capture_output=True,
        text=True,
    ).stdout
    assert native == python


def test_raw_output_for_one_sequence(tsrun, tiny_bert_pt):
    result = _tsrun(tsrun, tiny_bert_pt, "--ids", "101,2040,2001,102", "--raw", "--threads", "1")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)
    assert outputs["last_hidden_state"]["shape"] == [1, 4, 32]
    assert len(outputs["last_hidden_state"]["data"]) == 4 * 32
    assert outputs["pooler_output"]["shape"] == [1, 32]


def test_raw_output_matches_the_python_runner(tsrun, tiny_bert_pt):
    args = ["--ids", "101,7592,102", "--ids", "101,2088,2003,1037,102", "--raw", "--threads", "2"]
    result = _tsrun(tsrun, tiny_bert_pt, *args)
    assert result.returncode == 0, result.stderr
    ids = torch.tensor([[101, 7592, 102, 0, 0], [101, 2088, 2003, 1037, 102]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    # One-shot --ids keeps the plain graph under engine auto: compare with the same path.
    expected = tsrunner.Runner(tiny_bert_pt, threads=2, kernel_path="default").run(
        {"input_ids": ids, "attention_mask": mask}
    )
    printed = json.loads(result.stdout)
    for name, tensor in expected.items():
        got = torch.tensor(printed[name]["data"], dtype=torch.float64).to(torch.float32)
        assert torch.equal(got.reshape(tensor.shape), tensor)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "tsrun: error: no model given; see tsrun --help"),
        (["{model}"], 2, "tsrun: error: nothing to run: pass --ids"),
        (
            ["{model}", "--ids", "101,x,102", "--raw"],
            2,
            'tsrun: error: --ids: "x" is not an integer',
        ),
        (["{model}", "--ids", "101,,102", "--raw"], 2, 'tsrun: error: --ids: "" is not an integer'),
        (
            ["{model}", "--ids", "101,40000,102", "--raw"],
            2,
            'tsrun: error: invalid input: input "input_ids" has value 40000 at [0][1]',
        ),
        (
            ["{model}", "--ids", ",".join(["7"] * 65), "--raw"],
            2,
            "tsrun: error: invalid input: input has 65 tokens; this export was validated up to "
            "64: re-export with --max-length 65",
        ),
        (
            ["missing.pt", "--ids", "1", "--raw"],
            2,
            "tsrun: error: model file not found: missing.pt",
        ),
        (["{text}", "--ids", "1", "--raw"], 2, "is not a TorchScript archive"),
        # A plain TorchScript module takes inputs by forward's argument names (test_plain_trace):
        # nn.Linear's is "input", not token ids.
        (["{plain}", "--ids", "1", "--raw"], 2, "--ids: this export takes no token ids"),
        (["--threads", "-1", "{model}"], 2, "--threads"),
        (["--bogus"], 2, "--bogus"),
    ],
)
def test_errors_are_one_line_with_documented_exit_codes(
    tsrun, tiny_bert_pt, tmp_path, args, code, message
):
    text = tmp_path / "text.pt"
    text.write_text("hello")
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    args = [a.format(model=tiny_bert_pt, text=text, plain=plain) for a in args]
    result = subprocess.run([tsrun, *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "terminate called" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
