"""What `pip install` leaves behind: a native tsrun on PATH, the SDK, the extension."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tsrunner

LIBTSRUNNER = Path(tsrunner.__file__).parent / "lib" / "libtsrunner.so"


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
    package = LIBTSRUNNER.parent.parent
    for binary in [*package.glob("_core*.so"), LIBTSRUNNER]:
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


# utf8proc and libcrypto are linked into libtsrunner (cmake/PrivateStaticDeps.cmake): a wheel
# needs no Debian libutf8proc2/libssl3 at run time, and their symbols stay private to it.
PRIVATE_LIBRARIES = re.compile(r"libutf8proc|libcrypto|libssl")
PRIVATE_SYMBOLS = re.compile(r"^(utf8proc_|SHA\d|EVP_|OSSL_|OPENSSL_|CRYPTO_|ERR_)")


def _needed(path) -> list[str]:
    return re.findall(r"\(NEEDED\).*\[(.+)\]", _dynamic_section(str(path)))


def test_utf8proc_and_openssl_are_not_runtime_dependencies(tsrun):
    for binary in (LIBTSRUNNER, tsrun):
        needed = _needed(binary)
        assert "libc10.so" in needed, (binary, needed)  # the pattern reads readelf's output
        assert not [name for name in needed if PRIVATE_LIBRARIES.search(name)], (binary, needed)


# What the system must still provide: glibc and the C++ runtime (manylinux's allowed set).
SYSTEM_RUNTIME = re.compile(r"^(linux-vdso|ld-linux|lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s)\.so)")


def test_tsrun_needs_nothing_from_the_system_but_glibc_and_the_cxx_runtime(tsrun, clean_env):
    site_packages = LIBTSRUNNER.resolve().parents[2]
    ldd = subprocess.run(["ldd", tsrun], capture_output=True, text=True, env=clean_env, check=True)
    libraries = [line.split()[0] for line in ldd.stdout.splitlines() if line.strip()]
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.MULTILINE))
    from_system = [
        name
        for name in libraries
        if not (name in resolved and Path(resolved[name]).resolve().is_relative_to(site_packages))
        and not SYSTEM_RUNTIME.match(Path(name).name)
    ]
    assert not from_system, ldd.stdout


def test_libtsrunner_exports_no_utf8proc_or_openssl_symbol():
    dynamic_symbols = subprocess.run(
        ["readelf", "--dyn-syms", "--wide", str(LIBTSRUNNER)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # "Num: Value Size Type Bind Vis Ndx Name[@version]": defined and undefined symbols alike.
    rows = [line.split() for line in dynamic_symbols.splitlines()]
    names = [row[7].split("@")[0] for row in rows if len(row) >= 8 and row[0][:-1].isdigit()]
    assert any(name.startswith("_ZN8tsrunner") for name in names)  # the table was read
    leaked = [name for name in names if PRIVATE_SYMBOLS.match(name)]
    assert not leaked, leaked


def test_the_cmake_package_asks_consumers_for_torch_only():
    package = LIBTSRUNNER.parent / "cmake" / "tsrunner"
    text = "\n".join(path.read_text() for path in package.glob("*.cmake"))
    assert "find_dependency(Torch" in text and 'INTERFACE_LINK_LIBRARIES "torch"' in text
    assert not re.search(r"utf8proc|openssl|crypto", text, re.IGNORECASE)


# Activates a provider that does not exist and makes that fatal: any OpenSSL that reads this
# file in its default library context cannot hash (`OPENSSL_CONF=... openssl dgst` fails).
POISONED_OPENSSL_CONF = """\
config_diagnostics = 1
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
no_such_provider = no_such_provider_sect

[no_such_provider_sect]
activate = 1
"""


def test_the_digest_check_ignores_the_hosts_openssl_configuration(tsrun, tiny_bert_pt, tmp_path):
    config = tmp_path / "openssl.cnf"
    config.write_text(POISONED_OPENSSL_CONF)
    digest = tsrunner.verify_archive(tiny_bert_pt)
    run = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", "--expect-sha256", digest],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(config)},
    )
    assert run.returncode == 0, run.stderr
