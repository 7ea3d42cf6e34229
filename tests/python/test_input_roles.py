"""The pipeline finds model inputs by their manifest role and outputs by manifest name, so an
export whose tensors are not named as Hugging Face names them still runs from text; archives
written before roles existed run by Hugging Face's names."""

from __future__ import annotations

import json
import re
import subprocess
import warnings

import pytest
import torch

import tsrunner
from archive_tools import resave
from tsrunner import _core
from tsrunner.integrity import seal
from tsrunner.tasks import TASKS

TEXTS = ["Jim Henson was a puppeteer.", "", "A longer sentence, with a comma and more words."]
RENAMED = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "segments"}


def _edit_manifest(edit):
    def edit_files(texts: dict[str, str]) -> dict[str, str]:
        manifest = json.loads(texts["tsrunner/manifest.json"])
        edit(manifest)
        return {**texts, "tsrunner/manifest.json": json.dumps(manifest)}

    return edit_files


def _rename_inputs(manifest: dict) -> None:
    for spec in manifest["inputs"]:
        assert spec["role"]  # the exporter records roles; the pipeline must use them
        spec["name"] = RENAMED[spec["name"]]


def _drop_roles(manifest: dict) -> None:
    for spec in manifest["inputs"]:
        del spec["role"]


@pytest.fixture(scope="module")
def expected(tiny_bert_pt):
    return tsrunner.Runner(tiny_bert_pt, threads=1).predict(TEXTS)


def test_inputs_named_otherwise_run_from_text_by_role(tiny_bert_pt, tmp_path, expected, tsrun):
    renamed = tmp_path / "renamed.pt"
    resave(tiny_bert_pt, renamed, edit_files=_edit_manifest(_rename_inputs))
    runner = tsrunner.Runner(renamed, threads=1)
    assert runner.input_names == ["ids", "mask", "segments"]
    assert runner.predict(TEXTS) == expected
    args = [arg for text in TEXTS for arg in ("--text", text)]
    # --text alone takes engine=default (a one-shot run); the Runner took auto = onednn: the
    # same path on both sides, or float rounding differs (the fused layer norm's, for one).
    args += ["--kernel-path", tsrunner.Runner(renamed, threads=1).kernel_path]
    result = subprocess.run([tsrun, str(renamed), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected
    ids = subprocess.run(
        [tsrun, str(renamed), "--ids", "101,2040,102", "--raw"], text=True, capture_output=True
    )
    assert ids.returncode == 0, ids.stderr
    lines = json.dumps({"input_ids": [101, 2040, 102], "token_type_ids": [0, 0, 5]}) + "\n"
    batch = subprocess.run(
        [tsrun, str(renamed), "--input", "-"], input=lines, text=True, capture_output=True
    )
    assert batch.returncode == 2 and '"token_type_ids"[2] = 5 is outside [0, 2)' in batch.stderr


def test_archives_without_roles_run_by_hugging_face_names(tiny_bert_pt, tmp_path, expected):
    old = tmp_path / "no_roles.pt"
    resave(tiny_bert_pt, old, edit_files=_edit_manifest(_drop_roles))
    assert all("role" not in spec for spec in tsrunner.read_manifest(old)["inputs"])
    assert tsrunner.Runner(old, threads=1).predict(TEXTS) == expected


def test_an_input_that_text_cannot_fill_is_refused_at_once(tiny_bert_pt, tmp_path):
    def unfillable(manifest: dict) -> None:
        manifest["inputs"][2]["role"] = "pixel_values"
        manifest["inputs"][2]["default"] = None

    path = tmp_path / "unfillable.pt"
    resave(tiny_bert_pt, path, edit_files=_edit_manifest(unfillable))
    message = re.escape('input "token_type_ids" (role pixel_values) cannot be made from text')
    with pytest.raises(tsrunner.Error, match=message):
        tsrunner.Runner(path).predict("text")


class _WithSentenceEmbedding(torch.nn.Module):
    """The export plus a third output, as a traced sentence-transformers head would add."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor):
        hidden, pooled = self.inner(ids, mask, types)
        return hidden, pooled, hidden[:, 0] * 3.0 + 1.0


def test_a_sentence_embedding_output_is_the_embedding_as_is(tiny_bert_pt, tmp_path):
    files = dict.fromkeys(["tsrunner/manifest.json", "tsrunner/tokenizer.json"], "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        inner = torch.jit.load(tiny_bert_pt, _extra_files=files)
        module = torch.jit.script(_WithSentenceEmbedding(inner))
    manifest = json.loads(files["tsrunner/manifest.json"])
    manifest["outputs"].append(
        {"name": "sentence_embedding", "dtype": "float32", "shape": ["batch", 32]}
    )
    manifest["pooling"] = {"mode": "max", "normalize": True}  # the graph pools: not applied
    path = tmp_path / "sentence_embedding.pt"
    texts = {"tsrunner/manifest.json": json.dumps(manifest)}
    texts["tsrunner/tokenizer.json"] = files["tsrunner/tokenizer.json"].decode()
    torch.jit.save(module, str(path), _extra_files=texts)
    seal(path)
    runner = tsrunner.Runner(path, threads=1)
    got = runner.predict(TEXTS, batch_size=1)  # the shapes run() gets below
    tokenizer = tsrunner.Tokenizer.from_file(path)
    for text, answer in zip(TEXTS, got, strict=True):
        encoding = tokenizer.encode(text)
        inputs = {
            "input_ids": torch.tensor([encoding.ids]),
            "attention_mask": torch.tensor([encoding.attention_mask]),
            "token_type_ids": torch.tensor([encoding.type_ids]),
        }
        want = runner.run(inputs)["sentence_embedding"][0]
        assert answer["embedding"] == pytest.approx(want.tolist(), rel=1e-6)


def test_libtsrunner_knows_every_task_the_exporter_writes():
    assert sorted(_core.KNOWN_TASKS) == sorted(TASKS)
