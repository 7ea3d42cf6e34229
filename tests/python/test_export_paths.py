"""Where an export may write, and the exit codes of usage errors (docs/cli.md's table)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import tsrunner
from tsrunner.cli import main


@pytest.fixture
def cli(capsys):
    """`tsrunner ...` in this process (the same main() the console script runs, without a new
    interpreter importing torch each time): (exit code, stderr)."""

    def run(*args):
        capsys.readouterr()  # only what this command writes
        code = main([*map(str, args)])
        return code, capsys.readouterr().err

    return run


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tsrunner: error: "), lines
    return lines[0]


def test_an_output_in_a_missing_directory_is_a_usage_error(cli, tiny_bert_dir, tmp_path):
    output = tmp_path / "missing" / "sub" / "model.pt"
    code, stderr = cli("export", tiny_bert_dir, "-o", output)
    assert code == 2, stderr
    line = _one_error_line(stderr)
    assert f"directory {output.parent} does not exist" in line
    assert not (tmp_path / "missing").exists()  # nothing was created
    with pytest.raises(ValueError, match="does not exist; create it first"):
        tsrunner.export(tiny_bert_dir, output)
    assert not (tmp_path / "missing").exists()


def test_no_directory_is_created_at_the_filesystem_root(cli, tiny_bert_dir):
    # This session may run as root, which could create it: the export must not try.
    root_dir = Path("/") / f"tsrunner-test-{uuid.uuid4().hex[:12]}"
    try:
        code, stderr = cli("export", tiny_bert_dir, "-o", root_dir / "model.pt")
        assert code == 2, stderr
        assert "does not exist" in _one_error_line(stderr)
        assert not root_dir.exists()
    finally:
        shutil.rmtree(root_dir, ignore_errors=True)


def test_a_file_where_the_directory_should_be(cli, tiny_bert_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    code, stderr = cli("export", tiny_bert_dir, "-o", tmp_path / "file" / "model.pt")
    assert code == 2
    assert "is not a directory" in _one_error_line(stderr)


@pytest.mark.parametrize("name", ["model.onnx", "model", "model.pt.tmp"])
def test_an_unknown_suffix_names_the_two_formats(cli, tiny_bert_dir, tmp_path, name):
    code, stderr = cli("export", tiny_bert_dir, "-o", tmp_path / name)
    assert code == 2, stderr
    line = _one_error_line(stderr)
    assert "TorchScript (.pt) or AOTInductor (.pt2)" in line, line
    assert not list(tmp_path.iterdir())


def test_a_task_the_model_has_no_class_for_is_one_line_exit_2(cli, tiny_bert_dir, tmp_path):
    code, stderr = cli("export", tiny_bert_dir, "-o", tmp_path / "m.pt", "--task", "text2text")
    assert code == 2, stderr
    line = _one_error_line(stderr)
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
