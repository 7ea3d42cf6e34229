from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


def _load_data_module(name: str):
    spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fixtures = _load_data_module("make_fixtures")
tokenizer_fixtures = _load_data_module("tokenizer_fixtures")
from_text = _load_data_module("from_text")
tiny_models = _load_data_module("tiny_models")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return fixtures.minilm_directory()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return fixtures.make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_bert")


@pytest.fixture(scope="session")
def tiny_bert_pt(tiny_bert_dir, tmp_path_factory) -> Path:
    import tsrunner

    path = tmp_path_factory.mktemp("exports") / "tiny_bert.pt"
    tsrunner.export(tiny_bert_dir, path, max_length=64)
    return path


@pytest.fixture(scope="session")
def classifier_pt(tmp_path_factory) -> Path:
    """A tiny random BERT text classifier with MiniLM's tokenizer (tsrun serve's tests)."""
    import tsrunner

    directory = tiny_models.make_model(
        "BERT",
        "text-classification",
        tmp_path_factory.mktemp("models") / "tiny_classifier",
        tokenizer_source=fixtures.minilm_directory(),
    )
    path = tmp_path_factory.mktemp("exports") / "classifier.pt"
    tsrunner.export(directory, path, max_length=64)
    return path


@pytest.fixture(scope="session")
def tiny_bert_pt2_export(tiny_bert_dir, tmp_path_factory):
    """tiny_bert as an AOTInductor package: (path, ExportReport). Compiled once per session
    (tens of seconds): every .pt2 test shares it."""
    import tsrunner

    path = tmp_path_factory.mktemp("aoti") / "tiny_bert.pt2"
    report = tsrunner.export(tiny_bert_dir, path, max_length=64)
    return path, report


@pytest.fixture(scope="session")
def tiny_bert_pt2(tiny_bert_pt2_export) -> Path:
    return tiny_bert_pt2_export[0]


SMOKE_GATE_SENTENCES = 200


@pytest.fixture(scope="session")
def tiny_int8_export(tiny_bert_dir, tmp_path_factory):
    """tiny_bert with int8 Linear layers, gated on SMOKE_GATE_SENTENCES sentences (the product
    gates on 2,000): (path, ExportReport)."""
    import tsrunner
    from tsrunner import accuracy_gate

    path = tmp_path_factory.mktemp("int8") / "tiny_int8.pt"
    full_size = accuracy_gate.GATE_SENTENCES
    accuracy_gate.GATE_SENTENCES = SMOKE_GATE_SENTENCES
    try:
        report = tsrunner.export(tiny_bert_dir, path, max_length=64, quantize="int8")
    finally:
        accuracy_gate.GATE_SENTENCES = full_size
    return path, report


@pytest.fixture(scope="session")
def tiny_int8_pt(tiny_int8_export) -> Path:
    return tiny_int8_export[0]


@pytest.fixture(scope="session")
def minilm_pt(minilm_dir, tmp_path_factory) -> Path:
    import tsrunner

    path = tmp_path_factory.mktemp("exports") / "minilm.pt"
    tsrunner.export(minilm_dir, path, max_length=128)
    return path


@pytest.fixture(scope="session")
def family_results(tmp_path_factory) -> dict:
    """Every (family, task) of tests/data/tiny_models.py with its family's tokenizer, exported
    once per session and run from text."""
    import torch

    workdir = tmp_path_factory.mktemp("families")
    tokenizer = fixtures.minilm_directory()
    threads = torch.get_num_threads()
    # Tiny models gain nothing from threads; on a busy machine one thread is several times faster.
    torch.set_num_threads(1)
    try:
        return {
            (family, task): tiny_models.run_case(
                family, task, workdir, tokenizer_source=tokenizer, family_tokenizers=True
            )
            for family, task in tiny_models.cases()
        }
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tsrun() -> str:
    """The tsrun installed beside this Python (the environment's bin/), else the one on PATH."""
    beside = Path(sys.executable).parent / "tsrun"
    path = str(beside) if beside.is_file() else shutil.which("tsrun")
    assert path, "tsrun is not installed: run `make install`"
    return path


@pytest.fixture
def clean_env() -> dict[str, str]:
    """An environment with no library or Python search paths: what a deployment box has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "PYTHON"))}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.fixture(scope="session")
def example_build(tmp_path_factory) -> Path:
    """examples/cpp configured and built against the pip-installed package, the way its
    CMakeLists.txt says (compiled once per session: tests run `embed` from here and install it)."""
    build = tmp_path_factory.mktemp("example-build")
    prefix = subprocess.run(
        [sys.executable, "-m", "tsrunner", "--cmake-prefix-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cmake = str(Path(sys.executable).parent / "cmake")
    source = Path(__file__).resolve().parents[2] / "examples" / "cpp"
    configure = subprocess.run(
        [cmake, "-S", str(source), "-B", str(build), "-G", "Ninja",
         "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DCMAKE_MAKE_PROGRAM={Path(sys.executable).parent / 'ninja'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert configure.returncode == 0, configure.stdout + configure.stderr
    built = subprocess.run([cmake, "--build", str(build)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    return build
