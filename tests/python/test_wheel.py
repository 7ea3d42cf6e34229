"""The wheel `make wheel` builds, installed elsewhere.

In `make test` (smoke, under a minute): the wheel is built from this tree's build directory
(incremental), its contents are checked, and it is installed with --no-deps into a fresh venv
whose torch is a link to this environment's and whose other dependencies come from this
environment through a .pth file; the venv's `tsrunner export`, `tsrun` and `python -m tsrunner
--cmake-prefix-path` then run from the venv's own copy. This proves the wheel is complete and
relocatable (nothing it needs is left in the build tree or in this venv's tsrunner), not that
its declared dependencies resolve from an index. `make test-wheel` (minutes) also runs the test
marked wheel_full, which `make test` deselects: the wheel in a clean venv with its dependencies
from the index, and the C++ example (examples/cpp) built and run against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import tsrunner

ROOT = Path(__file__).resolve().parents[2]


def _run(command, **kwargs):
    result = subprocess.run([*map(str, command)], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """TSR_WHEEL (what `make wheel` wrote), else the wheel built here as `make wheel` does."""
    given = os.environ.get("TSR_WHEEL")
    if given:
        return Path(given)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q",
         "--no-build-isolation", "--no-deps", "-w", dist, ROOT],
        cwd=ROOT,
    )  # fmt: skip
    (path,) = dist.glob("tsrunner-*.whl")
    return path


def test_the_wheel_holds_the_python_package_the_sdk_and_tsrun(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    version = tsrunner.__version__
    assert wheel.name.startswith(f"tsrunner-{version}-cp3")
    data = f"tsrunner-{version}.data"
    for required in [
        "tsrunner/__init__.py",
        "tsrunner/adopt.py",
        "tsrunner/manifest.schema.json",
        "tsrunner/py.typed",
        "tsrunner/lib/libtsrunner.so",
        "tsrunner/include/tsrunner/runner.h",
        "tsrunner/include/tsrunner/c_api.h",
        "tsrunner/lib/cmake/tsrunner/tsrunnerConfig.cmake",
        f"{data}/scripts/tsrun",
    ]:
        assert required in names, (required, sorted(names)[:40])
    assert any(n.startswith("tsrunner/_core.") and n.endswith(".so") for n in names)
    assert not any(n.startswith(("tests/", "build/", ".venv/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"tsrunner-{version}.dist-info/METADATA").decode()
    assert "Requires-Dist: torch==2.13.0" in metadata


def test_installed_with_no_deps_it_runs_from_its_own_copy(wheel, tmp_path, tiny_bert_dir):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python",
          venv / "bin" / "python", "install", "-q", "--no-deps", wheel])  # fmt: skip
    # Then the dependencies: torch linked beside tsrunner (tsrun's RUNPATH looks for it there),
    # the others from this environment through a .pth (after the venv's own site-packages, so
    # this environment's tsrunner stays hidden behind the venv's).
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (site / "torch").symlink_to(purelib / "torch")
    (site / "zz_dependencies.pth").write_text(f"{purelib}\n")
    _check_installed(venv / "bin", tmp_path, tiny_bert_dir)


def _check_installed(bin_dir: Path, work: Path, model_dir: Path) -> Path:
    venv = bin_dir.parent
    where = _run([bin_dir / "python", "-c", "import tsrunner; print(tsrunner.__file__)"])
    assert Path(where.strip()).is_relative_to(venv), where
    prefix = Path(_run([bin_dir / "python", "-m", "tsrunner", "--cmake-prefix-path"]).strip())
    assert prefix.is_relative_to(venv) and (prefix / "lib/libtsrunner.so").is_file()
    model = work / "model.pt"
    _run([bin_dir / "tsrunner", "export", model_dir, "-o", model, "--max-length", "16", "-q"])
    # tsrun from the venv's bin/, loading the venv's libtsrunner, with no Python around.
    env = {"PATH": "/usr/bin:/bin"}
    ldd = _run(["ldd", bin_dir / "tsrun"], env=env)
    libtsrunner = next(line for line in ldd.splitlines() if "libtsrunner" in line)
    assert str(venv) in libtsrunner and "not found" not in ldd, ldd
    answer = json.loads(_run([bin_dir / "tsrun", model, "--text", "from the wheel"], env=env))
    assert len(answer["embedding"]) == 32
    return prefix


@pytest.mark.wheel_full  # minutes: `make test-wheel`; `make test` deselects it
def test_a_clean_venv_installs_it_with_its_dependencies(wheel, tmp_path, tiny_bert_dir):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    bin_dir = venv / "bin"
    _run([bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "-c", ROOT / "requirements/constraints.txt", wheel])  # fmt: skip
    prefix = _check_installed(bin_dir, tmp_path, tiny_bert_dir)
    # The C++ example, as a C++ user builds it against the installed wheel.
    build = tmp_path / "example"
    tools = Path(sys.executable).parent  # cmake and ninja: build tools, not the wheel's
    _run([tools / "cmake", "-S", ROOT / "examples/cpp", "-B", build, "-G", "Ninja",
          "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}",
          f"-DCMAKE_MAKE_PROGRAM={tools / 'ninja'}"])  # fmt: skip
    _run([tools / "cmake", "--build", build])
    lines = _run([build / "embed", tmp_path / "model.pt", "a wheel"], env={"PATH": "/usr/bin"})
    assert len(json.loads(lines.splitlines()[0])["embedding"]) == 32
