"""Starts `tsrun serve` as a real process on a free port and talks HTTP to it (tests, load test).

The server is ready when it prints `listening on http://HOST:PORT` on stderr; `stop()` always
ends it (SIGTERM, then SIGKILL) so no test leaves one behind.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import subprocess
import time
import warnings
from pathlib import Path

LISTENING = re.compile(r"^listening on http://(?P<host>[^ ]+):(?P<port>\d+)$")


class Server:
    def __init__(self, tsrun: str, models: list[Path | str], *args: str, env=None, timeout=120):
        command = [tsrun, "serve", *map(str, models), "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stderr_lines: list[str] = []
        try:
            self.host, self.port = self._wait_until_listening(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self, timeout: float) -> tuple[str, int]:
        # Reads the pipe itself: a buffered readline() can take two lines at once and leave the
        # second ("listening ...") where select() no longer sees it (seen with a busy machine).
        deadline = time.monotonic() + timeout
        fd = self.process.stderr.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending = b""
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 65536)
            if not chunk:  # the server exited before it was ready
                lines = "".join(self.stderr_lines) + pending.decode(errors="replace")
                raise RuntimeError(f"tsrun serve exited: {lines}")
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace") + "\n"
                self.stderr_lines.append(line)
                match = LISTENING.match(line.rstrip("\n"))
                if match:
                    if pending:
                        self.stderr_lines.append(pending.decode(errors="replace"))
                    host = match["host"].strip("[]")
                    return host, int(match["port"])
        raise RuntimeError(f"tsrun serve was not ready in {timeout} s: {self.stderr_lines}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        """(status, headers, body bytes) of one request on a new connection."""
        connection = self.connection(timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post(self, path: str, body, headers=None, timeout: float = 60):
        """(status, parsed JSON or None) of a POST."""
        status, _, data = self.request("POST", path, body, headers, timeout)
        return status, json.loads(data) if data else None

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self.stderr_lines.extend(self.process.stderr.readlines())
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr and not self.process.stderr.closed:
            self.process.stderr.close()

    def rss_bytes(self) -> int:
        """The server's resident memory, from /proc."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stdlib_sentences(limit: int | None = None) -> list[str]:
    """Real human-written sentences every machine has: the docstrings of Python's stdlib."""
    import inspect
    import sys

    names = sorted(
        name for name in sys.stdlib_module_names if not name.startswith("_") and "." not in name
    )
    sentences: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name in ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
            continue
        try:
            with warnings.catch_warnings():  # deprecated modules warn on import
                warnings.simplefilter("ignore")
                module = __import__(name)
        except Exception:
            continue
        docs = [inspect.getdoc(module) or ""]
        for _, member in inspect.getmembers(module):
            doc = inspect.getdoc(member) if callable(member) else None
            if doc:
                docs.append(doc)
        for doc in docs:
            for paragraph in doc.split("\n\n"):
                text = " ".join(paragraph.split())
                if 20 <= len(text) <= 400 and text not in seen:
                    seen.add(text)
                    sentences.append(text)
        if limit and len(sentences) >= limit:
            return sentences[:limit]
    return sentences


def environment_without_api_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TSRUN_API_KEY"}


def add_server_args(parser) -> None:
    """`--server-args ...`: more tsrun serve options, everything after the flag (benchmarks)."""
    import argparse

    parser.add_argument(
        "--server-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="more tsrun serve options: everything after this flag",
    )
