"""The C API (tsrunner/c_api.h) through ctypes, against the installed libtsrunner: what a Rust,
Go, C# or Java binding does. Its answers must be the Python Runner's, bit for bit."""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
import threading
from pathlib import Path

import pytest
import torch

import tsrunner
from tsrunner.__main__ import cmake_prefix_path

PREFIX = Path(cmake_prefix_path())
HEADER = PREFIX / "include" / "tsrunner" / "c_api.h"
OK, INVALID_INPUT, LOAD_ERROR = 0, 1, 2
INT64, FLOAT32 = 1, 2
TEXTS = ["Who was Jim Henson?", "Café naïve — 東京 🙂", "The stock market fell on Tuesday"]

c_void_pp = ctypes.POINTER(ctypes.c_void_p)
c_size_p = ctypes.POINTER(ctypes.c_size_t)


class Tensor(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int32),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("rank", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("data_bytes", ctypes.c_size_t),
    ]


SIGNATURES = {
    "tsr_version": (ctypes.c_char_p, []),
    "tsr_abi_version": (ctypes.c_int32, []),
    "tsr_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "tsr_error_status": (ctypes.c_int, [ctypes.c_void_p]),
    "tsr_error_message": (ctypes.c_char_p, [ctypes.c_void_p]),
    "tsr_error_free": (None, [ctypes.c_void_p]),
    "tsr_runner_load": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_void_p, c_void_pp, c_void_pp]),
    "tsr_runner_free": (None, [ctypes.c_void_p]),
    "tsr_runner_manifest_json": (ctypes.c_char_p, [ctypes.c_void_p]),
    "tsr_runner_predict": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            c_size_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_char_p),
            c_size_p,
            ctypes.c_size_t,
            c_void_pp,
            c_void_pp,
        ],
    ),
    "tsr_predictions_free": (None, [ctypes.c_void_p]),
    "tsr_predictions_count": (ctypes.c_size_t, [ctypes.c_void_p]),
    "tsr_predictions_json": (ctypes.c_char_p, [ctypes.c_void_p]),
    "tsr_predictions_embedding": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
            c_size_p,
            c_void_pp,
        ],
    ),
    "tsr_runner_run": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.POINTER(Tensor), ctypes.c_size_t, c_void_pp, c_void_pp],
    ),
    "tsr_outputs_free": (None, [ctypes.c_void_p]),
    "tsr_outputs_count": (ctypes.c_size_t, [ctypes.c_void_p]),
    "tsr_outputs_at": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(Tensor), c_void_pp],
    ),
}


class CApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class CApi:
    """The few calls the tests make, each raising CApiError(status, message) on failure."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in SIGNATURES.items():
            function = getattr(self.lib, name)
            function.restype, function.argtypes = restype, argtypes

    def check(self, status: int, error: ctypes.c_void_p) -> None:
        if error.value is not None:
            message = self.lib.tsr_error_message(error).decode()
            assert self.lib.tsr_error_status(error) == status
            self.lib.tsr_error_free(error)
        else:
            message = ""
        if status != OK:
            assert message, "a failed call must explain itself"
            raise CApiError(status, message)

    def load(self, path) -> ctypes.c_void_p:
        runner, error = ctypes.c_void_p(), ctypes.c_void_p()
        status = self.lib.tsr_runner_load(str(path).encode(), None, runner, error)
        self.check(status, error)
        return runner

    @staticmethod
    def _texts(texts, lengths):
        encoded = [text.encode() if isinstance(text, str) else text for text in texts]
        array = (ctypes.c_char_p * len(texts))(*encoded)
        if lengths == "exact":
            lengths = [len(b or b"") for b in encoded]
        return array, None if lengths is None else (ctypes.c_size_t * len(texts))(*lengths)

    def predict(self, runner, texts, lengths="exact", pairs=None):
        """JSON of every prediction, and the embeddings as float32 tensors (a CApiError for
        predictions without one)."""
        array, sizes = self._texts(texts, lengths)
        pair_array, pair_sizes = self._texts(pairs, "exact") if pairs else (None, None)
        out, error = ctypes.c_void_p(), ctypes.c_void_p()
        status = self.lib.tsr_runner_predict(
            runner, array, sizes, len(texts), pair_array, pair_sizes, 0, out, error
        )
        self.check(status, error)
        try:
            answers = json.loads(self.lib.tsr_predictions_json(out))
            assert self.lib.tsr_predictions_count(out) == len(answers)
            embeddings = [self.embedding(out, i) for i in range(len(answers))]
        finally:
            self.lib.tsr_predictions_free(out)
        return answers, embeddings

    def embedding(self, predictions, index) -> torch.Tensor | CApiError:
        data, dimension = ctypes.POINTER(ctypes.c_float)(), ctypes.c_size_t()
        error = ctypes.c_void_p()
        status = self.lib.tsr_predictions_embedding(predictions, index, data, dimension, error)
        try:
            self.check(status, error)
        except CApiError as refused:
            return refused
        return torch.tensor(data[: dimension.value], dtype=torch.float32)

    def run(self, runner, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = []  # the buffers must outlive the call
        tensors = (Tensor * len(inputs))()
        for slot, (name, value) in zip(tensors, inputs.items(), strict=True):
            value = value.contiguous()
            shape = (ctypes.c_int64 * value.dim())(*value.shape)
            keep += [value, shape]
            dtype = {torch.int64: INT64, torch.float32: FLOAT32}[value.dtype]
            slot.name, slot.dtype, slot.shape, slot.rank = name.encode(), dtype, shape, value.dim()
            slot.data, slot.data_bytes = value.data_ptr(), value.numel() * value.element_size()
        out, error = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.tsr_runner_run(runner, tensors, len(inputs), out, error), error)
        results = {}
        try:
            for i in range(self.lib.tsr_outputs_count(out)):
                view, error = Tensor(), ctypes.c_void_p()
                self.check(self.lib.tsr_outputs_at(out, i, view, error), error)
                raw = bytearray(ctypes.string_at(view.data, view.data_bytes))
                dtype = {INT64: torch.int64, FLOAT32: torch.float32}[view.dtype]
                shape = [view.shape[d] for d in range(view.rank)]
                results[view.name.decode()] = torch.frombuffer(raw, dtype=dtype).reshape(shape)
        finally:
            self.lib.tsr_outputs_free(out)
        return results


@pytest.fixture(scope="module")
def capi() -> CApi:
    return CApi(PREFIX / "lib" / "libtsrunner.so")


def test_every_function_in_the_header_is_exported(capi):
    declared = re.findall(r"TSR_API [^;(]*?\b(tsr_\w+)\(", HEADER.read_text())
    assert len(declared) > 40 and "tsr_runner_run" in declared
    symbols = subprocess.run(
        ["readelf", "--dyn-syms", "--wide", str(PREFIX / "lib" / "libtsrunner.so")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # "Num: Value Size Type Bind Vis Ndx Name": defined (Ndx not UND), global, default functions.
    exported = {
        row[7]
        for row in (line.split() for line in symbols.splitlines())
        if len(row) >= 8 and row[3:5] == ["FUNC", "GLOBAL"] and row[5] == "DEFAULT"
        and row[6] != "UND"
    }  # fmt: skip
    assert not set(declared) - exported, set(declared) - exported


def test_versions_come_from_one_source(capi):
    assert capi.lib.tsr_version().decode() == tsrunner.__version__
    abi = re.search(r"#define TSR_ABI_VERSION (\d+)", HEADER.read_text())
    assert capi.lib.tsr_abi_version() == int(abi.group(1))
    generated = (HEADER.parent / "version_macros.h").read_text()
    macros = dict(re.findall(r"#define (TSRUNNER_VERSION_\w+) (\S+)", generated))
    major, minor, patch = (int(part) for part in tsrunner.__version__.split(".")[:3])
    assert macros["TSRUNNER_VERSION_STRING"] == f'"{tsrunner.__version__}"'
    assert macros["TSRUNNER_VERSION_MAJOR"] == str(major)
    assert macros["TSRUNNER_VERSION_MINOR"] == str(minor)
    assert macros["TSRUNNER_VERSION_PATCH"] == str(patch)


def test_embeddings_equal_the_python_runners_bit_for_bit(capi, minilm_pt):
    runner = capi.load(minilm_pt)
    try:
        answers, embeddings = capi.predict(runner, TEXTS)
        manifest = json.loads(capi.lib.tsr_runner_manifest_json(runner))
    finally:
        capi.lib.tsr_runner_free(runner)
    expected = tsrunner.Runner(minilm_pt).predict(TEXTS)
    assert answers == expected
    for embedding, answer in zip(embeddings, expected, strict=True):
        assert embedding.shape == (384,)
        assert torch.equal(embedding, torch.tensor(answer["embedding"], dtype=torch.float32))
    assert manifest == tsrunner.Runner(minilm_pt).manifest


def test_raw_buffers_run_like_runner_run(capi, tiny_bert_pt):
    python_runner = tsrunner.Runner(tiny_bert_pt)
    ids = python_runner.tokenizer.encode("Jim Henson was a puppeteer").ids
    inputs = {
        "input_ids": torch.tensor([ids, [*ids[:-2], 0, 0]]),
        "attention_mask": torch.tensor([[1] * len(ids), [*[1] * (len(ids) - 2), 0, 0]]),
    }
    runner = capi.load(tiny_bert_pt)
    try:
        outputs = capi.run(runner, inputs)
    finally:
        capi.lib.tsr_runner_free(runner)
    expected = python_runner.run(inputs)
    assert list(outputs) == list(expected)  # the manifest's order
    for name, tensor in expected.items():
        assert torch.equal(outputs[name], tensor), name


def test_text_lengths_are_honoured(capi, tiny_bert_pt):
    runner = capi.load(tiny_bert_pt)
    try:
        # Five bytes of "Hello world" are "Hello"; a NUL inside a counted text is kept.
        (prefix,), _ = capi.predict(runner, ["Hello world"], lengths=[5])
        with_nul, _ = capi.predict(runner, ["a\x00b"])
    finally:
        capi.lib.tsr_runner_free(runner)
    python_runner = tsrunner.Runner(tiny_bert_pt)
    assert prefix == python_runner.predict(["Hello"])[0]
    assert with_nul == python_runner.predict(["a\x00b"])


@pytest.mark.parametrize(
    ("task", "key"),
    [
        ("text-classification", "labels"),
        ("token-classification", "entities"),
        ("question-answering", "answer"),
    ],
)
def test_task_answers_equal_the_python_runners(capi, tmp_path, task, key):
    import make_fixtures
    import tiny_models

    model = tiny_models.make_model(
        "BERT", task, tmp_path / "model", tokenizer_source=make_fixtures.minilm_directory()
    )
    exported = tmp_path / "model.pt"
    tsrunner.export(model, exported, max_length=32)
    # question-answering reads the question as the text and the context as its pair.
    pairs = ["Jim Henson was a puppeteer from Mississippi"] * len(TEXTS)
    pairs = pairs if task == "question-answering" else None
    runner = capi.load(exported)
    try:
        answers, embeddings = capi.predict(runner, TEXTS, pairs=pairs)
    finally:
        capi.lib.tsr_runner_free(runner)
    assert answers == tsrunner.Runner(exported).predict(TEXTS, pairs)
    assert all(set(answer) == {key} for answer in answers)
    refused = embeddings[0]
    assert isinstance(refused, CApiError) and refused.status == INVALID_INPUT
    assert f"prediction 0 has no embedding (task {task})" in refused.message


def test_bad_inputs_get_a_status_and_a_message_naming_them(capi, tiny_bert_pt, tmp_path):
    with pytest.raises(CApiError) as missing:
        capi.load(tmp_path / "none.pt")
    assert missing.value.status == LOAD_ERROR and str(tmp_path / "none.pt") in missing.value.message
    not_a_model = tmp_path / "text.pt"
    not_a_model.write_text("hello")
    with pytest.raises(CApiError) as garbage:
        capi.load(not_a_model)
    assert garbage.value.status == LOAD_ERROR

    runner = capi.load(tiny_bert_pt)
    try:
        cases = [
            (lambda: capi.predict(runner, ["ok", None], None),
             "tsr_runner_predict: texts[1] is NULL"),
            (lambda: capi.predict(runner, [None], lengths=[4]), "texts[0] is NULL but its length"),
            (lambda: capi.predict(runner, [b"a\xff"], None), "UTF-8"),
            (lambda: capi.run(runner, {"input_ids": torch.ones(1, 0, dtype=torch.long)}),
             'inputs[0] ("input_ids").shape[1] is 0'),
            (lambda: capi.run(runner, {"input_ids": torch.tensor([[101, 40000, 102]])}),
             "40000"),
            (lambda: capi.run(runner, {"input_ids": torch.ones(1, 3)}), "input_ids"),
        ]  # fmt: skip
        for call, needle in cases:
            with pytest.raises(CApiError) as refused:
                call()
            assert refused.value.status == INVALID_INPUT, refused.value
            assert needle in refused.value.message and "\n" not in refused.value.message
        # The runner still answers after every refusal.
        answers, _ = capi.predict(runner, ["still here"])
        assert len(answers[0]["embedding"]) == 32
    finally:
        capi.lib.tsr_runner_free(runner)


def test_one_runner_serves_many_threads(capi, tiny_bert_pt):
    runner = capi.load(tiny_bert_pt)
    texts = [f"sentence number {i} of the thread test" for i in range(6)]
    try:
        serial = capi.predict(runner, texts)[0]
        results, failures = [], []

        def work():
            try:
                for _ in range(5):
                    results.append(capi.predict(runner, texts)[0])
            except Exception as error:  # surfaced below
                failures.append(error)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        capi.lib.tsr_runner_free(runner)
    assert not failures and len(results) == 20
    assert all(result == serial for result in results)


def test_the_documented_example_builds_as_c11_and_runs(tiny_bert_pt, tmp_path, clean_env):
    docs = Path(__file__).resolve().parents[2] / "docs" / "c-api.md"
    example = re.search(r"```c\n(.*?)```", docs.read_text(), re.S).group(1)
    (tmp_path / "embed.c").write_text(example)
    lib = PREFIX / "lib"
    compiled = subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", f"-I{PREFIX / 'include'}",
         "embed.c", "-o", "embed", f"-L{lib}", "-ltsrunner", f"-Wl,-rpath,{lib}"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    texts = ["Who was Jim Henson?", "a puppeteer"]
    ran = subprocess.run(
        [str(tmp_path / "embed"), str(tiny_bert_pt), *texts],
        capture_output=True, text=True, env=clean_env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("0: 32 floats, first ") and lines[1].startswith("1: 32 floats")
    assert json.loads(lines[2]) == tsrunner.Runner(tiny_bert_pt).predict(texts)
    missing = subprocess.run(
        [str(tmp_path / "embed"), str(tmp_path / "none.pt"), "hi"], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("LOAD_ERROR: ") and "none.pt" in missing.stderr
