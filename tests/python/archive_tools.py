"""Helpers that damage or rewrite tsrunner archives the way accidents and attackers would."""

from __future__ import annotations

import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import torch

from tsrunner.integrity import seal


def entry_name(path: Path, record: str) -> str:
    """The zip entry name of `record` (such as "data.pkl"), with the archive's top folder."""
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/", 1)[0]
    return f"{prefix}/{record}"


def data_offset(path: Path, record: str) -> tuple[int, int]:
    """Where `record`'s stored bytes start in the file, and how many there are."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(entry_name(path, record))
    with open(path, "rb") as file:
        file.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
    return info.header_offset + 30 + name_length + extra_length, info.compress_size


def flip_byte(source: Path, destination: Path, record: str, index: int = 0) -> None:
    """Copies `source` to `destination` with one byte of `record`'s stored data inverted."""
    offset, size = data_offset(source, record)
    assert 0 <= index < size
    data = bytearray(source.read_bytes())
    data[offset + index] ^= 0xFF
    destination.write_bytes(bytes(data))


def resave(source: Path, destination: Path, *, edit_files=None, sealed: bool = True) -> None:
    """Saves the TorchScript of `source` again with its tsrunner files changed by `edit_files`
    (a function taking and returning {name: text}); seals it like the exporter unless told not."""
    names = ["tsrunner/manifest.json", "tsrunner/config.json", "tsrunner/tokenizer.json"]
    files = dict.fromkeys(names, "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(source), _extra_files=files)
        texts = {name: value.decode() for name, value in files.items() if value}
        if edit_files is not None:
            texts = edit_files(texts)
        torch.jit.save(module, str(destination), _extra_files=texts)
    if sealed:
        seal(destination)


def copy(source: Path, destination: Path) -> Path:
    shutil.copyfile(source, destination)
    return destination
