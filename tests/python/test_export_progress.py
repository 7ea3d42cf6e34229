"""Export progress: one stderr line per step on a terminal, nothing when stderr is not one, and
--quiet silences the progress and the report."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest

from tsrunner import cli


def _export_args(model, output):
    return ["export", str(model), "-o", str(output), "--max-length", "12"]


def _read_until_closed(fd: int) -> bytes:
    shown = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed
            return shown
        if not chunk:
            return shown
        shown += chunk


def test_progress_on_a_terminal(tiny_bert_dir, tmp_path):
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tsrunner", *_export_args(tiny_bert_dir, tmp_path / "t.pt")],
        stderr=follower,
        stdout=subprocess.DEVNULL,
    )
    os.close(follower)
    shown = _read_until_closed(leader).decode()
    os.close(leader)
    assert process.wait() == 0
    steps = [
        line.split("] ", 1)[1] for line in shown.splitlines() if line.startswith("tsrunner: [")
    ]
    assert steps[0] == f"load {tiny_bert_dir}"
    assert steps[1] == "trace (jit): batch 2, sequence 12"
    validations = [step for step in steps if step.startswith("validate shape ")]
    total = len(validations)
    assert total >= 4
    assert [v.split(":")[0] for v in validations] == [
        f"validate shape {i}/{total}" for i in range(1, total + 1)
    ]
    assert validations[0] == f"validate shape 1/{total}: batch 2, sequence 12 (padded)"
    assert steps[-1] == f"save {tmp_path / 't.pt'}"


def test_no_progress_when_stderr_is_not_a_terminal(tiny_bert_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", *_export_args(tiny_bert_dir, tmp_path / "p.pt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Shape contract: dynamic, sequence 1..12" in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_progress_and_report(tiny_bert_dir, tmp_path, monkeypatch, capsys, quiet):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = _export_args(tiny_bert_dir, tmp_path / "q.pt") + (["--quiet"] if quiet else [])
    assert cli.main(args) == 0
    assert (tmp_path / "q.pt").is_file()
    progress, report = terminal.getvalue(), capsys.readouterr().out
    if quiet:
        assert (progress, report) == ("", "")
    else:
        assert progress.startswith("tsrunner: [") and "validate shape 1/" in progress
        assert "Shape contract: dynamic" in report
