"""SIGINT or SIGTERM in the middle of an export leaves the previous file or none: never a
partial archive, and no temporary file behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import tsrunner


def _interrupt_while_writing(tiny_bert_dir, output, signum):
    """Starts `tsrunner export` and sends `signum` as soon as its temporary file appears, i.e.
    while the archive is being written, sealed and checked. Returns the exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tsrunner", "export", str(tiny_bert_dir), "-o", str(output),
         "--max-length", "32"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if any(output.parent.glob(f".{output.name}.*.partial")):
            process.send_signal(signum)
            break
        time.sleep(0.001)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [(signal.SIGINT, 130, "tsrunner: interrupted"), (signal.SIGTERM, 143, "tsrunner: terminated")],
)
def test_a_signal_during_export_keeps_the_previous_file(
    tiny_bert_dir, tiny_bert_pt, tmp_path, signum, code, message
):
    output = tmp_path / "model.pt"
    previous = tiny_bert_pt.read_bytes()
    output.write_bytes(previous)
    returncode, stderr = _interrupt_while_writing(tiny_bert_dir, output, signum)
    assert returncode == code, stderr
    assert message in stderr and "Traceback" not in stderr
    assert output.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert tsrunner.Runner(output).manifest["max_length"] == 64  # still the previous export


def test_a_signal_during_a_first_export_leaves_no_file(tiny_bert_dir, tmp_path):
    output = tmp_path / "model.pt"
    returncode, stderr = _interrupt_while_writing(tiny_bert_dir, output, signal.SIGTERM)
    assert returncode == 143, stderr
    assert list(tmp_path.iterdir()) == []
