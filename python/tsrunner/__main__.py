"""`python -m tsrunner`: the CLI, plus --cmake-prefix-path for C++ builds."""

from __future__ import annotations

import sys
from pathlib import Path


def cmake_prefix_path() -> str:
    """The prefix under which tsrunnerConfig.cmake lives (lib/cmake/tsrunner)."""
    return str(Path(__file__).resolve().parent)


if __name__ == "__main__":
    if sys.argv[1:] == ["--cmake-prefix-path"]:
        print(cmake_prefix_path())
        sys.exit(0)
    from .cli import main

    sys.exit(main())
