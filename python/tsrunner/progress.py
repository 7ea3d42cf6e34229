"""Export progress for people watching a terminal: one stderr line per step, with elapsed time.

Only when stderr is a terminal, so logs, pipes and CI output stay exactly as before.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def terminal_progress(
    stream: TextIO | None = None, *, quiet: bool = False
) -> Callable[[str], None] | None:
    """A progress callback for tsrunner.export writing to `stream` (default stderr), or None when
    `quiet` or when the stream is not a terminal."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not stream.isatty():
        return None
    started = time.perf_counter()

    def report(message: str) -> None:
        print(
            f"tsrunner: [{time.perf_counter() - started:6.1f} s] {message}", file=stream, flush=True
        )

    return report
