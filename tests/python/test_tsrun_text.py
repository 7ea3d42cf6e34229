"""tsrun text mode (--text) and batch mode (--input/--output JSON lines)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time

import numpy as np
import pytest

import tsrunner
from tsrunner import sample_text


def _tsrun(tsrun, *args, stdin=None, cwd=None):
    return subprocess.run(
        [tsrun, *map(str, args)], capture_output=True, text=True, input=stdin, cwd=cwd
    )


def _embeddings(lines):
    return np.array([json.loads(line)["embedding"] for line in lines], dtype=np.float32)


@pytest.fixture(scope="module")
def tiny_runner(tiny_bert_pt):
    return tsrunner.Runner(tiny_bert_pt, threads=1)


def test_text_mode_matches_predict_and_sentence_transformers(tsrun, minilm_pt, minilm_dir):
    result = _tsrun(tsrun, minilm_pt, "--text", "Who was Jim Henson?", "--text", "中文 café")
    assert result.returncode == 0, result.stderr
    native = _embeddings(result.stdout.splitlines())
    python = np.array(
        [
            r["embedding"]
            # tsrun --text keeps the plain graph (engine auto, one shot): compare like with like.
            for r in tsrunner.Runner(minilm_pt, kernel_path="default").predict(
                ["Who was Jim Henson?", "中文 café"]
            )
        ],
        dtype=np.float32,
    )
    assert np.array_equal(native, python)  # the same C++ code; floats print exactly

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(
        ["Who was Jim Henson?", "中文 café"]
    )
    cosine = (
        (native * expected).sum(1)
        / np.linalg.norm(native, axis=1)
        / np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.9999


def test_text_pair(tsrun, tiny_bert_pt, tiny_runner):
    result = _tsrun(tsrun, tiny_bert_pt, "--text", "a question", "--text-pair", "an answer")
    assert result.returncode == 0, result.stderr
    expected = tiny_runner.predict(["a question"], ["an answer"])[0]["embedding"]
    assert np.allclose(json.loads(result.stdout)["embedding"], expected, atol=1e-6)


def _mixed_lines():
    """Good lines of very different lengths, with bad ones at known line numbers."""
    texts = sample_text.sample(90, offset=300)
    lines = [json.dumps({"text": t}) for t in texts]
    lines[3] = json.dumps({"text": texts[3], "text_pair": "and its pair"})
    lines[6] = json.dumps({"input_ids": [101, 7592, 2088, 102]})
    bad = {
        5: "{not json",
        9: json.dumps({"txt": "missing text"}),
        12: json.dumps({"text": 42}),
        20: json.dumps({"input_ids": [101, 99999999, 102]}),
        33: json.dumps(["a", "list"]),
        34: json.dumps({"input_ids": []}),
    }
    for number, line in bad.items():
        lines[number - 1] = line
    return texts, lines, bad


def _check_batch_output(output_lines, texts, lines, bad, runner):
    assert len(output_lines) == len(lines)  # one answer per input line, none lost
    good = [i for i in range(len(lines)) if i + 1 not in bad and i not in (3, 6)]
    expected = runner.predict([texts[i] for i in good])
    actual = _embeddings([output_lines[i] for i in good])
    assert np.allclose(actual, [e["embedding"] for e in expected], atol=1e-5)  # in input order
    pair = runner.predict([texts[3]], ["and its pair"])[0]["embedding"]
    assert np.allclose(json.loads(output_lines[3])["embedding"], pair, atol=1e-5)
    assert len(json.loads(output_lines[6])["embedding"]) == len(pair)
    for number in bad:
        answer = json.loads(output_lines[number - 1])
        assert answer["line"] == number and answer["error"]


def test_batch_mode_keeps_order_and_reports_bad_lines(tsrun, tiny_bert_pt, tiny_runner, tmp_path):
    texts, lines, bad = _mixed_lines()
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    # Batch size 2 in windows of 5 lines, 2 batches at a time: results cross window and batch
    # boundaries, and batches finish out of order.
    result = _tsrun(
        tsrun,
        tiny_bert_pt,
        "--input",
        source,
        "--output",
        target,
        "--batch-size",
        2,
        "--window",
        5,
        "--concurrent-batches",
        2,
    )
    assert result.returncode == 2, result.stderr
    for number in bad:
        assert f"in.jsonl:{number}:" in result.stderr
    assert "not valid JSON" in result.stderr and 'missing "text"' in result.stderr
    assert '"text" must be a string' in result.stderr and "outside [0, 30522)" in result.stderr
    assert "6 bad input line(s)" in result.stderr
    assert "lines/s" not in result.stderr  # no progress bar when stderr is not a terminal
    _check_batch_output(target.read_text().splitlines(), texts, lines, bad, tiny_runner)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp


def test_batch_mode_stdin_to_stdout(tsrun, tiny_bert_pt, tiny_runner):
    texts, lines, bad = _mixed_lines()
    result = _tsrun(tsrun, tiny_bert_pt, "--input", "-", "--batch-size", 7, stdin="\n".join(lines))
    assert result.returncode == 2
    assert "<stdin>:5:" in result.stderr
    _check_batch_output(result.stdout.splitlines(), texts, lines, bad, tiny_runner)


def test_clean_batch_exits_zero(tsrun, tiny_bert_pt):
    lines = "\n".join(json.dumps({"text": t}) for t in sample_text.sample(10)) + "\n"
    result = _tsrun(tsrun, tiny_bert_pt, "--input", "-", "--output", "-", stdin=lines)
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 10


def test_failed_run_leaves_existing_output_alone(tsrun, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("previous results\n")
    result = _tsrun(tsrun, tmp_path / "missing.pt", "--input", "-", "--output", target, stdin="")
    assert result.returncode == 2 and "not found" in result.stderr
    assert target.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_progress_bar_on_a_terminal(tsrun, tiny_bert_pt, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"text": t}) for t in sample_text.sample(50)) + "\n")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [tsrun, tiny_bert_pt, "--input", source, "--output", tmp_path / "out.jsonl"],
        stderr=follower,
        stdout=subprocess.DEVNULL,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait() == 0
    assert b"50 lines" in shown and b"lines/s" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "a", "--input", "-"], "not both"),
        (["--text-pair", "b"], "--text-pair needs --text"),
        (["--text", "a", "--text", "b", "--text-pair", "c"], "one --text-pair per --text"),
        (["--text", "a", "--raw"], "cannot be mixed"),
        (["--input", "missing.jsonl"], "cannot read missing.jsonl"),
        (["--input", "-", "--batch-size", "0"], "--batch-size"),
        (["--input", "-", "--window", "0"], "--window"),
        (["--input", "-", "--concurrent-batches", "0"], "--concurrent-batches"),
        (["--text", "a", "--window", "8"], "--window and --concurrent-batches need --input"),
        (
            ["--ids", "101,102", "--raw", "--doc-stride", "8"],
            "--doc-stride needs --text or --input",
        ),
    ],
)
def test_usage_errors(tsrun, tiny_bert_pt, tmp_path, args, message):
    result = _tsrun(tsrun, tiny_bert_pt, *args, stdin="", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.splitlines()[0]  # CLI11 may add "Run with --help"
    assert result.stdout == ""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_the_previous_output_and_no_partial_one(
    tsrun, tiny_bert_pt, tmp_path, signal_number
):
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    process = subprocess.Popen(
        [
            tsrun,
            tiny_bert_pt,
            "--input",
            "-",
            "--output",
            target,
            "--window",
            "1",
            "--batch-size",
            "1",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        process.stdin.write(json.dumps({"text": "one line, answered into the temporary file"}))
        process.stdin.write("\n")
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("out.jsonl.tmp.*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.glob("out.jsonl.tmp.*")), "tsrun never opened its temporary file"
        process.send_signal(signal_number)
        assert process.wait(timeout=60) == 128 + signal_number
    finally:
        process.kill()
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
