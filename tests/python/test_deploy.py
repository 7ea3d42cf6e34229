"""Shipping an app built on the SDK without Python (docs/deploy.md): examples/cpp installed with
tsrunner_install_runtime runs from a moved prefix with an empty environment; the pkg-config
file builds a program; the container recipe copies what the install produced."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tsrunner

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docs" / "deploy" / "Dockerfile"
TEXTS = ["Who was Jim Henson?", "Jim Henson was a puppeteer", "The stock market fell on Tuesday"]
# From Torch's CMake (Caffe2/public/mkl.cmake with an empty MKL_ROOT).
BOGUS_TORCH_RPATH = {"/lib/intel64", "/lib/intel64_win", "/lib/win-x64"}
# What the system provides (glibc, the C++ runtime); everything else ships in the prefix.
SYSTEM_RUNTIME = re.compile(r"^(linux-vdso|ld-linux|lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s)\.so)")
SDK_PREFIX = Path(tsrunner.__file__).resolve().parent


def _dynamic_section(path: Path) -> str:
    return subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout


def _runpath(path: Path) -> list[str]:
    match = re.search(r"\((?:RUNPATH|RPATH)\).*\[(.*)\]", _dynamic_section(path))
    return match.group(1).split(":") if match else []


def _needed(path: Path) -> list[str]:
    return re.findall(r"\(NEEDED\).*\[(.+)\]", _dynamic_section(path))


@pytest.fixture(scope="module")
def installed_app(example_build, tmp_path_factory) -> Path:
    """examples/cpp installed to a prefix, then moved: nothing may point back at the build."""
    prefix = tmp_path_factory.mktemp("deploy") / "staging"
    cmake = str(Path(sys.executable).parent / "cmake")
    install = subprocess.run(
        [cmake, "--install", str(example_build), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    moved = prefix.parent / "opt-embed"
    prefix.rename(moved)
    return moved


def test_the_installed_app_runs_with_an_empty_environment(installed_app, minilm_pt):
    result = subprocess.run(
        [str(installed_app / "bin" / "embed"), str(minilm_pt), *TEXTS],
        capture_output=True,
        text=True,
        env={},
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    lines = result.stdout.splitlines()
    embeddings = torch.tensor([json.loads(line)["embedding"] for line in lines[: len(TEXTS)]])
    expected = torch.tensor(
        [answer["embedding"] for answer in tsrunner.Runner(minilm_pt).predict(TEXTS)]
    )
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-5)
    assert lines[len(TEXTS)].startswith(f"similarity({TEXTS[0]} | {TEXTS[1]}) = ")
    similarity = [float(line.rsplit("= ", 1)[1]) for line in lines[len(TEXTS) :]]
    assert len(similarity) == 2 and similarity[0] > 0.5 > similarity[1]


def test_the_installed_app_has_only_origin_relative_runpaths(installed_app):
    app = installed_app / "bin" / "embed"
    assert _runpath(app) == ["$ORIGIN/../lib"], _dynamic_section(app)
    for library in (installed_app / "lib").iterdir():
        entries = _runpath(library)
        assert all(entry.startswith("$ORIGIN") for entry in entries), (library, entries)
        assert not BOGUS_TORCH_RPATH & set(entries), (library, entries)


def test_the_prefix_holds_every_library_the_app_loads(installed_app):
    lib = installed_app / "lib"
    shipped = {path.name for path in lib.iterdir()}
    assert {"libtsrunner.so", "libonig.so.5", "libtorch_cpu.so", "libc10.so"} <= shipped
    assert not [name for name in shipped if "python" in name], shipped
    for binary in [installed_app / "bin" / "embed", *lib.iterdir()]:
        missing = [
            name
            for name in _needed(binary)
            if name not in shipped and not SYSTEM_RUNTIME.match(name)
        ]
        assert not missing, (binary, missing)
    ldd = subprocess.run(
        ["ldd", str(installed_app / "bin" / "embed")], capture_output=True, text=True, env={}
    )
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.MULTILINE))
    outside = {
        name: path
        for name, path in resolved.items()
        if not Path(path).resolve().is_relative_to(installed_app) and not SYSTEM_RUNTIME.match(name)
    }
    assert not outside and "not found" not in ldd.stdout, ldd.stdout


def test_a_consumers_build_rpath_has_no_bogus_torch_entries(example_build):
    entries = _runpath(example_build / "embed")
    assert entries, "the build tree's binary finds its libraries through its RUNPATH"
    assert not BOGUS_TORCH_RPATH & set(entries), entries


PKG_CONFIG_PROGRAM = r"""
#include <ATen/ATen.h>
#include <tsrunner/tsrunner.h>

#include <iostream>

int main(int argc, char** argv) {
  const tsrunner::Runner runner(argv[1]);
  at::Tensor ids = at::tensor({101, 7592, 2088, 102}, at::kLong).unsqueeze(0);
  const tsrunner::TensorMap outputs = runner.run({{"input_ids", ids}});
  std::cout << tsrunner::version() << " " << runner.manifest().task << " "
            << outputs.begin()->first << " " << outputs.begin()->second.sizes() << "\n";
  return argc == 2 ? 0 : 1;
}
"""


def test_pkg_config_builds_and_links_a_program(tmp_path, tiny_bert_pt, clean_env):
    env = {**clean_env, "PKG_CONFIG_PATH": str(SDK_PREFIX / "lib" / "pkgconfig")}
    pkg_config = ["pkg-config", "tsrunner"]
    version = subprocess.run([*pkg_config, "--modversion"], capture_output=True, text=True, env=env)
    assert version.stdout.strip() == tsrunner.__version__, version.stderr
    flags = subprocess.run(
        [*pkg_config, "--cflags", "--libs"], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert "-D_GLIBCXX_USE_CXX11_ABI=1" in flags and "-ltsrunner" in flags, flags
    source = tmp_path / "app.cc"
    source.write_text(PKG_CONFIG_PROGRAM)
    program = tmp_path / "app"
    compiled = subprocess.run(
        ["g++", str(source), "-o", str(program), *flags],
        capture_output=True,
        text=True,
        env=env,
    )
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run([str(program), str(tiny_bert_pt)], capture_output=True, text=True, env={})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[:3] == [
        tsrunner.__version__,
        "feature-extraction",
        "last_hidden_state",
    ]


def test_the_pkg_config_file_is_relative_to_itself():
    text = (SDK_PREFIX / "lib" / "pkgconfig" / "tsrunner.pc").read_text()
    assert "prefix=${pcfiledir}/../.." in text
    assert "torch_prefix=${prefix}/../torch" in text
    assert str(SDK_PREFIX.parent) not in text and "/work/" not in text


# glibc and libstdc++ symbol versions of each Debian release's slim image.
DEBIAN_RUNTIME = {"bookworm": ((2, 36), (3, 4, 30)), "trixie": ((2, 41), (3, 4, 33))}


def _required_versions(path: Path, prefix: str) -> list[tuple[int, ...]]:
    versions = subprocess.run(
        ["readelf", "-V", "--wide", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [
        tuple(int(part) for part in match.split("."))
        for match in re.findall(rf"Name: {prefix}_([0-9.]+)", versions)
    ]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in logical.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_container_recipe_copies_what_the_install_produced(installed_app, tmp_path):
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    base = re.fullmatch(r"debian:(\w+)-slim", instructions[0][1])
    assert base and base.group(1) in DEBIAN_RUNTIME, instructions[0]
    # The build context is the install prefix with the model added as model.pt.
    context = tmp_path / "context"
    shutil.copytree(installed_app, context, copy_function=lambda src, dst: Path(dst).touch())
    (context / "model.pt").touch()
    image_paths = set()
    for instruction, argument in instructions:
        if instruction == "COPY":
            *sources, destination = argument.split()
            assert not [source for source in sources if source.startswith("--")], argument
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: not in the install prefix"
                image_paths.add(
                    destination.rstrip("/") + "/" if source.endswith("/") else destination
                )
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])
    for path in entrypoint[:2]:
        assert any(path == image or path.startswith(image) for image in image_paths), path
    # The base image's glibc and libstdc++ are as new as anything the copied files ask for.
    glibc, glibcxx = DEBIAN_RUNTIME[base.group(1)]
    for binary in [installed_app / "bin" / "embed", *(installed_app / "lib").iterdir()]:
        assert max(_required_versions(binary, "GLIBC"), default=()) <= glibc, binary
        assert max(_required_versions(binary, "GLIBCXX"), default=()) <= glibcxx, binary
