"""SIGINT or SIGTERM in the middle of an export leaves the previous file or none: never a
partial archive, and no temporary file behind."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import tsrunner

# One process runs the `tsrunner export` command line once per output path given on stdin and
# prints its exit code, so that the (slow) imports happen once for all the scenarios. SIGINT
# gets Python's handler back: a shell starting a job in the background (`make test &` in a
# script) ignores SIGINT, children inherit that, and Python then leaves it ignored.
DRIVER = """
import signal
import sys
from tsrunner.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)
for line in sys.stdin:
    model, output = line.rstrip("\\n").split("\\t")
    code = main(["export", model, "-o", output, "--max-length", "32"])
    print(f"exit {code}", flush=True)
"""


def test_a_signal_during_export_leaves_the_previous_file_or_none(
    tiny_bert_dir, tiny_bert_pt, tmp_path
):
    replaced = tmp_path / "replaced" / "model.pt"
    replaced.parent.mkdir()
    previous = tiny_bert_pt.read_bytes()
    replaced.write_bytes(previous)
    first = tmp_path / "first" / "model.pt"
    first.parent.mkdir()
    scenarios = [(replaced, signal.SIGINT, 130), (first, signal.SIGTERM, 143)]

    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in driver.stdout], daemon=True).start()
    try:
        for output, signum, code in scenarios:
            driver.stdin.write(f"{tiny_bert_dir}\t{output}\n")
            driver.stdin.flush()
            # Signal as soon as the temporary file appears: while the archive is being written,
            # sealed and checked.
            deadline = time.monotonic() + 300
            while not any(output.parent.glob(f".{output.name}.*.partial")):
                assert driver.poll() is None and time.monotonic() < deadline, "no temporary file"
                time.sleep(0.001)
            driver.send_signal(signum)
            line = lines.get(timeout=300)
            while not line.startswith("exit "):  # the export's own report, if it got that far
                line = lines.get(timeout=300)
            assert line == f"exit {code}\n"
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
    stderr = driver.stderr.read()
    assert "tsrunner: interrupted" in stderr and "tsrunner: terminated" in stderr
    assert "Traceback" not in stderr

    assert replaced.read_bytes() == previous
    assert [p.name for p in replaced.parent.iterdir()] == ["model.pt"]
    assert tsrunner.Runner(replaced).manifest["max_length"] == 64  # still the previous export
    assert list(first.parent.iterdir()) == []
