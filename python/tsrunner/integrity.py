"""The archive's SHA-256 content digest: written by the exporter, checked by the C++ runner.

The digest covers every record of the zip archive except the digest record itself, in byte
order of record name (the name without the archive's top-level folder, which follows the file
name), each framed as u64le(name length) + name + u64le(size) + bytes. It is stored in the record
DIGEST_RECORD, appended last. cpp/src/integrity.cc computes the same value; docs/security.md
explains what it proves and what it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

DIGEST_RECORD = "tsrunner/digest.json"
_DIGEST_ENTRY = f"extra/{DIGEST_RECORD}"
_CHUNK = 1 << 20


def _records(archive: zipfile.ZipFile) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The archive's top-level folder and its records by name below it."""
    names = archive.namelist()
    if not names:
        raise ValueError("the archive has no records")
    prefix = names[0].split("/", 1)[0] + "/"
    records: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if not info.filename.startswith(prefix):
            raise ValueError(f"record {info.filename} is outside the archive folder {prefix}")
        records[info.filename[len(prefix) :]] = info
    return prefix, records


def content_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 content digest (64 hex digits) of the archive at `path`."""
    sha = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        _, records = _records(archive)
        for name in sorted(records, key=lambda n: n.encode()):
            if name == _DIGEST_ENTRY:
                continue
            encoded = name.encode()
            info = records[name]
            sha.update(struct.pack("<Q", len(encoded)) + encoded)
            sha.update(struct.pack("<Q", info.file_size))
            with archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    sha.update(chunk)
    return sha.hexdigest()


def seal(path: Path) -> str:
    """Appends the digest record to a freshly saved archive; returns the digest."""
    digest = content_digest(path)
    record = {
        "algorithm": "sha256",
        "content_digest": digest,
        "covers": "every record but this one, by name, each as u64le(name length) name "
        "u64le(size) bytes (docs/security.md)",
    }
    with zipfile.ZipFile(path, "a") as archive:
        prefix, records = _records(archive)
        if _DIGEST_ENTRY in records:
            raise ValueError(f"{path} is already sealed")
        archive.writestr(prefix + _DIGEST_ENTRY, json.dumps(record), zipfile.ZIP_STORED)
    return digest
