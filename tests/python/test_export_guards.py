"""Exporter guards: no random heads, RoBERTa's position offset, half precision on CPUs, dtype
aliases, the reload check's tolerance, and one line (no traceback) for every user error."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import transformers

import tsrunner
from tsrunner import model_source


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tsrunner", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    from tiny_models import make_model

    return make_model(
        "RoBERTa", "text-classification", tmp_path_factory.mktemp("roberta"), tokenizer_source=None
    )


def test_a_random_head_is_refused_unless_asked_for(tiny_bert_dir, tmp_path):
    """tiny_bert_dir is a bare BertModel: a question-answering head would be random."""
    output = tmp_path / "qa.pt"
    result = _cli(
        "export", tiny_bert_dir, "-o", output, "--task", "question-answering", "--max-length", "16"
    )
    assert result.returncode == 2
    line = _one_error_line(result)
    assert "BertForQuestionAnswering: the checkpoint has no weights for qa_outputs.bias, " in line
    assert "--allow-untrained-head" in line
    assert not output.exists()

    with pytest.warns(UserWarning, match="initialised them at random"):
        report = tsrunner.export(
            tiny_bert_dir,
            output,
            task="question-answering",
            max_length=16,
            allow_untrained_head=True,
        )
    assert report.manifest["model"]["untrained_parameters"] == [
        "qa_outputs.bias",
        "qa_outputs.weight",
    ]


def test_roberta_positions_leave_room_for_the_padding_offset(roberta_dir, tmp_path):
    """max_position_embeddings 130 with pad_token_id 1: positions run 2..129, 128 tokens."""
    positions, offset = model_source.usable_positions(
        transformers.AutoModelForSequenceClassification.from_pretrained(roberta_dir),
        transformers.AutoConfig.from_pretrained(roberta_dir),
    )
    assert (positions, offset) == (128, 2)
    result = _cli("export", roberta_dir, "-o", tmp_path / "r.pt", "--max-length", "130")
    assert result.returncode == 2
    assert (
        "max_length 130 exceeds the model's 128 position embeddings (max_position_embeddings "
        "130 less the padding offset 2)" in _one_error_line(result)
    )
    report = tsrunner.export(roberta_dir, tmp_path / "r.pt", shapes="fixed")
    assert report.manifest["max_length"] == 128


def test_a_crash_inside_is_still_one_line(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    from tsrunner import cli

    def broken(*args, **kwargs):
        raise IndexError("index out of range in self")

    monkeypatch.setattr(cli, "_run_export", broken)
    code = cli.main(["export", str(tiny_bert_dir), "-o", str(tmp_path / "m.pt")])
    assert code == cli.EXIT_RUNTIME
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tsrunner: internal error: IndexError: index out of range in self (please report it; "
        "TSRUNNER_TRACEBACK=1 shows the traceback)"
    ]


@pytest.mark.parametrize(("alias", "name"), [("bf16", "bfloat16"), ("fp16", "float16")])
def test_dtype_aliases(alias, name):
    from tsrunner.export_options import ExportOptions, validate_options

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = validate_options(ExportOptions(dtype=alias))
    assert options.dtype == name and options.atol == tsrunner.exporter.DEFAULT_ATOL[name]


def test_float16_on_a_cpu_without_half_kernels_warns(monkeypatch):
    from tsrunner.export_options import ExportOptions, validate_options

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)
    with pytest.warns(UserWarning, match="--dtype float16 on this CPU has no fast float16 kernels"):
        validate_options(ExportOptions(dtype="float16"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_options(ExportOptions(dtype="float32"))


def test_offline_hub_error_recommends_the_installed_hf_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"`hf download ID --local-dir DIR`") as caught:
        tsrunner.export("someone/some-model", tmp_path / "m.pt")
    assert "huggingface-cli" not in str(caught.value)
    assert Path(sys.executable).with_name("hf").is_file()  # the command it names is installed


def one_label_classifier(directory: Path, base: Path) -> Path:
    """A tiny ms-marco-style reranker: the tiny BERT's config with one label, and its tokenizer."""
    import shutil

    torch.manual_seed(3)
    config = transformers.AutoConfig.from_pretrained(base, num_labels=1)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(base / name, directory / name)
    return directory


@pytest.mark.parametrize("batch_size", [2, 1])
def test_one_label_classifiers_export(tmp_path, batch_size, tiny_bert_dir):
    """Reloading used to demand bit-equality with the in-memory trace and refused these."""
    directory = one_label_classifier(tmp_path / "ce", tiny_bert_dir)
    report = tsrunner.export(directory, tmp_path / "ce.pt", max_length=32, batch_size=batch_size)
    assert report.passed and report.manifest["labels"] == ["LABEL_0"]


def test_reload_check_names_the_output_that_differs(tiny_bert_dir, tmp_path, monkeypatch):
    from tsrunner import backends

    load = backends.TorchScriptBackend.load

    def tampered(self, path, device):
        module = load(self, path, device)
        return lambda *inputs: (module(*inputs)[0], module(*inputs)[1] + 0.5)

    monkeypatch.setattr(backends.TorchScriptBackend, "load", tampered)
    with pytest.raises(tsrunner.ExportError) as caught:
        tsrunner.export(tiny_bert_dir, tmp_path / "m.pt", max_length=8)
    assert str(caught.value) == (
        "the saved archive does not reproduce the trace: pooler_output by 0.5 (atol 0.0001); "
        "nothing was written"
    )
    assert not (tmp_path / "m.pt").exists()
