"""Issue 11.1: a Runner opens its file once; the bytes it verified are the bytes it loads.

A test hook in libtsrunner runs between the digest check and the TorchScript load, where an
attacker racing the load would act: replacing the path changes nothing, rewriting the open file
is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

import tsrunner
from tsrunner import _core


@pytest.fixture
def after_verify():
    """Installs a hook for one test and always removes it."""
    yield _core._testing.set_after_verify_hook
    _core._testing.set_after_verify_hook(None)


def _inputs():
    return {"input_ids": torch.tensor([[101, 7592, 2088, 102]])}


def test_a_file_renamed_over_the_path_after_the_check_is_not_what_runs(
    tiny_bert_pt, minilm_pt, tmp_path, after_verify
):
    path = tmp_path / "model.pt"
    shutil.copyfile(tiny_bert_pt, path)
    other = tmp_path / "other.pt"
    shutil.copyfile(minilm_pt, other)
    swapped = []

    def swap(loading: str) -> None:
        os.replace(other, loading)  # a different, validly sealed model now has the path
        swapped.append(loading)

    after_verify(swap)
    runner = tsrunner.Runner(path, threads=1)
    after_verify(None)
    assert swapped == [str(path)]
    assert tsrunner.read_manifest(path)["max_length"] == 128  # minilm on disk
    assert runner.manifest["max_length"] == 64  # tiny_bert loaded
    assert runner.tokenizer.max_length == 64

    got = runner.run(_inputs())
    expected = tsrunner.Runner(tiny_bert_pt, threads=1).run(_inputs())
    assert got["last_hidden_state"].shape[-1] == 32  # tiny_bert's width, not minilm's 384
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_a_file_rewritten_in_place_after_the_check_is_refused(
    tiny_bert_pt, minilm_pt, tmp_path, after_verify
):
    path = tmp_path / "model.pt"
    shutil.copyfile(tiny_bert_pt, path)
    other = minilm_pt.read_bytes()

    def rewrite(loading: str) -> None:
        with open(loading, "r+b") as file:  # the same inode the runner holds open
            file.truncate(0)
            file.write(other)

    after_verify(rewrite)
    with pytest.raises(tsrunner.LoadError, match="was written to while it was being loaded"):
        tsrunner.Runner(path, threads=1)


def test_the_runners_tokenizer_is_the_embedded_one(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt, threads=1)
    assert runner.has_tokenizer
    from_file = tsrunner.Tokenizer.from_file(tiny_bert_pt)
    text = "Hello world, open once!"
    assert runner.tokenizer.encode(text).ids == from_file.encode(text).ids
    assert runner.tokenizer.max_length == from_file.max_length == 64


def _opens_of(path, command, tmp_path) -> int:
    """How many times `command` opened `path` (strace's openat log, every thread)."""
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", str(log), *command],
        check=True,
        capture_output=True,
    )
    return sum(str(path) in line and "= -1" not in line for line in log.read_text().splitlines())


@pytest.mark.parametrize(
    "mode",
    [
        ["--text", "hello world"],
        ["--input", "JSONL"],
    ],
    ids=["text", "batch"],
)
def test_tsrun_opens_the_model_file_once(tiny_bert_pt, tsrun, tmp_path, mode):
    model = tmp_path / "model.pt"
    shutil.copyfile(tiny_bert_pt, model)
    args = list(mode)
    if args[1] == "JSONL":
        jsonl = tmp_path / "in.jsonl"
        jsonl.write_text('{"text": "hello world"}\n{"input_ids": [101, 7592, 102]}\n')
        args = ["--input", str(jsonl), "--output", str(tmp_path / "out.jsonl")]
    assert _opens_of(model, [tsrun, str(model), *args], tmp_path) == 1
