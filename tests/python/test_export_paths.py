"""Where an export may write, and the exit codes of usage errors (docs/cli.md's table)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tsrunner


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tsrunner", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tsrunner: error: "), lines
    return lines[0]


def test_an_output_in_a_missing_directory_is_a_usage_error(tiny_bert_dir, tmp_path):
    output = tmp_path / "missing" / "sub" / "model.pt"
    result = _cli("export", tiny_bert_dir, "-o", output)
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result)
    assert f"directory {output.parent} does not exist" in line
    assert not (tmp_path / "missing").exists()  # nothing was created
    with pytest.raises(ValueError, match="does not exist; create it first"):
        tsrunner.export(tiny_bert_dir, output)
    assert not (tmp_path / "missing").exists()


def test_no_directory_is_created_at_the_filesystem_root(tiny_bert_dir):
    # This session may run as root, which could create it: the export must not try.
    root_dir = Path("/") / f"tsrunner-test-{uuid.uuid4().hex[:12]}"
    try:
        result = _cli("export", tiny_bert_dir, "-o", root_dir / "model.pt")
        assert result.returncode == 2, result.stderr
        assert "does not exist" in _one_error_line(result)
        assert not root_dir.exists()
    finally:
        shutil.rmtree(root_dir, ignore_errors=True)


def test_a_file_where_the_directory_should_be(tiny_bert_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    result = _cli("export", tiny_bert_dir, "-o", tmp_path / "file" / "model.pt")
    assert result.returncode == 2
    assert "is not a directory" in _one_error_line(result)


@pytest.mark.parametrize("name", ["model.onnx", "model", "model.pt.tmp"])
def test_an_unknown_suffix_names_the_two_formats(tiny_bert_dir, tmp_path, name):
    result = _cli("export", tiny_bert_dir, "-o", tmp_path / name)
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result)
    assert "TorchScript (.pt) or AOTInductor (.pt2)" in line, line
    assert not list(tmp_path.iterdir())


def test_a_task_the_model_has_no_class_for_is_one_line_exit_2(tiny_bert_dir, tmp_path):
    result = _cli("export", tiny_bert_dir, "-o", tmp_path / "m.pt", "--task", "text2text")
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result)
    assert "--task text2text does not apply to BertConfig" in line, line


def test_text_on_an_export_without_task_output_is_a_usage_error(tiny_bert_dir, tmp_path, tsrun):
    # A causal-lm export of a model without a KV-cache wrapper: raw tensors only.
    path = tmp_path / "lm.pt"
    with pytest.warns(UserWarning, match="initialised them at random"):
        tsrunner.export(
            tiny_bert_dir, path, task="causal-lm", allow_untrained_head=True, max_length=8
        )
    result = subprocess.run([tsrun, path, "--text", "hello"], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert 'task-aware output for task "causal-lm" is not implemented yet' in result.stderr
    runner = tsrunner.Runner(path)
    with pytest.raises(ValueError, match="use raw outputs"):
        runner.predict(["hello"])
