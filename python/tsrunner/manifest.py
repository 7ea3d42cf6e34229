"""The manifest: the contract between the exporter and the runners, stored in the archive.

Its schema is documented in docs/format.md and checked by manifest.schema.json; the C++ side
(cpp/src/manifest.cc) parses the same file. Both refuse a schema newer than they know.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import _core

SCHEMA_VERSION: int = _core.MANIFEST_SCHEMA_VERSION
MANIFEST_RECORD = "tsrunner/manifest.json"
TOKENIZER_RECORD = "tsrunner/tokenizer.json"
CONFIG_RECORD = "tsrunner/config.json"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export, read without loading (running) any TorchScript code.

    Raises tsrunner.LoadError when the file is missing, not TorchScript, or has no manifest.
    """
    return json.loads(_core.read_manifest(Path(path)))


def read_archive_file(path: str | os.PathLike[str], name: str) -> str | None:
    """A file embedded in an export (such as TOKENIZER_RECORD), or None when it has none.

    Like read_manifest, this reads the zip archive directly and runs no TorchScript code.
    """
    return _core.read_archive_file(Path(path), name)


def describe(manifest: dict[str, Any]) -> str:
    """The readable summary `tsrunner info` and `tsrun info` print (one implementation, C++)."""
    return _core.describe_manifest(json.dumps(manifest))


def schema() -> dict[str, Any]:
    """The JSON Schema of the current manifest version."""
    return json.loads((Path(__file__).parent / "manifest.schema.json").read_text())
