"""Atomic file writes: an interrupted export leaves the previous file or none, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yields a temporary path beside `destination`; renames it over `destination` only when
    the block finishes without an exception, and removes it otherwise. The directory must
    exist: creating it is the caller's decision."""
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary_path, 0o666 & ~umask)  # mkstemp's 0600 is not what a user expects
        os.replace(temporary_path, destination)
    finally:
        temporary_path.unlink(missing_ok=True)
