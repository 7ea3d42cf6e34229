"""What `pip install` leaves behind: a native tsrun on PATH, the SDK, the extension."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tsrunner


def _dynamic_section(path: str) -> str:
    return subprocess.run(
        ["readelf", "-d", path], capture_output=True, text=True, check=True
    ).stdout


def test_tsrun_is_an_elf_binary_with_relative_runpath(tsrun):
    assert Path(tsrun).read_bytes()[:4] == b"\x7fELF"
    dynamic = _dynamic_section(tsrun)
    runpath = next(line for line in dynamic.splitlines() if "RUNPATH" in line or "RPATH" in line)
    entries = runpath.split("[", 1)[1].rstrip("]").split(":")
    assert entries and all(entry.startswith("$ORIGIN") for entry in entries), runpath


def test_tsrun_resolves_every_library_without_python(tsrun, clean_env):
    ldd = subprocess.run(["ldd", tsrun], capture_output=True, text=True, env=clean_env, check=True)
    assert "not found" not in ldd.stdout, ldd.stdout
    assert "libtsrunner" in ldd.stdout and "libtorch_cpu" in ldd.stdout
    assert "libpython" not in ldd.stdout, "tsrun must not embed Python"


def test_tsrun_runs_with_a_bare_environment(tsrun, clean_env):
    result = subprocess.run([tsrun, "--version"], capture_output=True, text=True, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(f"tsrun {tsrunner.__version__} (LibTorch 2.13.0")


def test_extension_and_library_use_relative_runpaths():
    package = Path(tsrunner.__file__).parent
    for binary in [*package.glob("_core*.so"), package / "lib" / "libtsrunner.so"]:
        dynamic = _dynamic_section(str(binary))
        assert "$ORIGIN" in dynamic and "/work/" not in dynamic, (binary, dynamic)


def test_cmake_prefix_path_points_at_the_installed_sdk():
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", "--cmake-prefix-path"],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = Path(result.stdout.strip())
    assert (prefix / "lib/cmake/tsrunner/tsrunnerConfig.cmake").is_file()
    assert (prefix / "lib/cmake/tsrunner/tsrunnerConfigVersion.cmake").is_file()
    assert (prefix / "include/tsrunner/runner.h").is_file()
    assert (prefix / "lib/libtsrunner.so").is_file()
    # The public headers keep LibTorch's heavy script header out (PIMPL).
    for header in (prefix / "include/tsrunner").glob("*.h"):
        assert "torch/script.h" not in header.read_text(), header


def test_versions_agree():
    from tsrunner import _core

    assert _core.__version__ == tsrunner.__version__
