"""Traces made with the original "Export to TorchScript" recipe: no tsrunner manifest, inputs by
the traced forward's argument names, and `tsrunner adopt` to make a full archive of one."""

from __future__ import annotations

import json
import subprocess
import warnings

import pytest
import torch
import transformers

import tsrunner
from conftest import fixtures
from tsrunner import integrity
from tsrunner.cli import main

# The recipe's sentence, with the [MASK] it puts at index 8.
TEXT = "[CLS] Who was Jim Henson ? [SEP] Jim Henson was a [MASK] [SEP]"


def recipe_trace(model_dir, path):
    """traced_bert.pt as the recipe makes it, the way Transformers 5 allows: its torchscript=True
    flag is gone, so return_dict=False gives the tuple output; the segment ids go into forward's
    second positional slot, which is BertModel's attention_mask (the recipe's own bug)."""
    tokenizer = tsrunner.Tokenizer.from_file(model_dir / "tokenizer.json")
    indexed_tokens = list(tokenizer.encode(TEXT).ids[1:-1])  # the text has its own specials
    segments_ids = [0] * 7 + [1] * (len(indexed_tokens) - 7)
    tokens_tensor = torch.tensor([indexed_tokens])
    segments_tensors = torch.tensor([segments_ids])
    model = transformers.BertModel.from_pretrained(model_dir).eval()
    model.config.return_dict = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced_model = torch.jit.trace(model, [tokens_tensor, segments_tensors])
        torch.jit.save(traced_model, str(path))
    return path, tokens_tensor, model


@pytest.fixture(scope="module")
def traced(tiny_bert_dir, tmp_path_factory):
    return recipe_trace(tiny_bert_dir, tmp_path_factory.mktemp("recipe") / "traced_bert.pt")


def _run(*command):
    return subprocess.run([*map(str, command)], capture_output=True, text=True)


@pytest.fixture
def cli(capsys):
    """`tsrunner ...` in this process (the console script's main(), without a new interpreter
    importing torch each time), as a CompletedProcess."""

    def run(*args):
        capsys.readouterr()  # only what this command writes
        code = main([*map(str, args)])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def _note(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "is a plain TorchScript module (no tsrunner manifest)" in lines[0]
    assert "no content digest" in lines[0] and "tsrunner adopt" in lines[0]
    return lines[0]


@pytest.mark.parametrize("front", ["tsrunner", "tsrun"])
def test_info_shows_the_traced_forwards_arguments(traced, tsrun, cli, front):
    path = traced[0]
    command = cli if front == "tsrunner" else lambda *args: _run(tsrun, *args)
    result = command("info", path)
    assert result.returncode == 0, result.stderr
    _note(result.stderr)
    # The names show the recipe's bug: its second tensor (segment ids) went to attention_mask.
    assert "(input_ids: Tensor, attention_mask: Tensor) -> Tuple[Tensor, Tensor]" in result.stdout
    assert "input_ids, attention_mask" in result.stdout and "BertModel" in result.stdout
    assert f"sha256      {integrity.content_digest(path)}" in result.stdout
    as_json = json.loads(command("info", path, "--json").stdout)
    assert as_json["plain_module"] is True
    assert [i["name"] for i in as_json["inputs"]] == ["input_ids", "attention_mask"]


def test_tsrun_ids_reach_input_ids_by_name(traced, tsrun):
    path, tokens, model = traced
    ids = ",".join(map(str, tokens[0].tolist()))
    result = _run(tsrun, path, "--ids", ids, "--raw")
    assert result.returncode == 0, result.stderr
    _note(result.stderr)
    outputs = json.loads(result.stdout)
    assert list(outputs) == ["output_0", "output_1"]
    with torch.inference_mode():
        want = model(input_ids=tokens, attention_mask=torch.ones_like(tokens))[0]
    got = torch.tensor(outputs["output_0"]["data"]).reshape(want.shape)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_runner_runs_a_plain_module_by_argument_names(traced, cli):
    path, tokens, _ = traced
    with pytest.warns(UserWarning, match="plain TorchScript module"):
        runner = tsrunner.Runner(path)
    mask = torch.ones_like(tokens)
    got = runner.run({"attention_mask": mask, "input_ids": tokens})  # any order: by name
    want = torch.jit.load(str(path))(tokens, mask)
    torch.testing.assert_close(got["output_0"], want[0])
    torch.testing.assert_close(got["output_1"], want[1])
    with pytest.raises(ValueError, match=r"unknown input \"token_type_ids\"; this model takes: "):
        runner.run({"input_ids": tokens, "attention_mask": mask, "token_type_ids": mask})
    with pytest.raises(ValueError, match=r"missing input \"attention_mask\""):
        runner.run({"input_ids": tokens})
    # Text needs a manifest; the error names the fix.
    with pytest.raises(tsrunner.Error, match="tsrunner adopt"):
        runner.predict(["hello"])
    result = cli("info", path)
    digest = integrity.content_digest(path)
    assert digest in result.stdout
    with pytest.raises(tsrunner.LoadError, match="expected content digest"):
        tsrunner.Runner(path, expected_sha256="0" * 64)
    with pytest.warns(UserWarning):
        tsrunner.Runner(path, expected_sha256=digest)


def test_tsrun_text_on_a_plain_module_names_the_fix(traced, tsrun):
    result = _run(tsrun, traced[0], "--text", "hello")
    assert result.returncode == 2
    assert "tsrunner adopt" in result.stderr and "takes token ids" in result.stderr


def test_adopt_makes_a_full_archive(traced, tiny_bert_dir, tmp_path, tsrun, cli):
    path, tokens, _ = traced
    adopted = tmp_path / "model.pt"
    result = cli("adopt", path, "--model", tiny_bert_dir, "-o", adopted)
    assert result.returncode == 0, result.stderr
    runner = tsrunner.Runner(adopted)
    manifest = runner.manifest
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
    assert manifest["tokenizer"] and manifest["task"] == "feature-extraction"
    assert tsrunner.verify_archive(adopted) == integrity.content_digest(adopted)
    mask = torch.ones_like(tokens)
    got = runner.run({"input_ids": tokens, "attention_mask": mask})
    want = torch.jit.load(str(path))(tokens, mask)
    torch.testing.assert_close(got["last_hidden_state"], want[0])
    text = _run(tsrun, adopted, "--text", "Who was Jim Henson?")
    assert text.returncode == 0, text.stderr
    assert len(json.loads(text.stdout)["embedding"]) == 32


def test_adopt_refuses_a_trace_of_another_model(tiny_bert_dir, tmp_path, cli):
    other = fixtures.make_tiny_bert(tmp_path / "other", seed=1)
    path, _, _ = recipe_trace(other, tmp_path / "other.pt")
    output = tmp_path / "model.pt"
    result = cli("adopt", path, "--model", tiny_bert_dir, "-o", output)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path} does not match {tiny_bert_dir}" in lines[0], lines
    assert not output.exists()
    again = cli("adopt", tmp_path / "none.pt", "--model", other, "-o", output)
    assert again.returncode == 2 and "model file not found" in again.stderr
