"""Rerankers give CrossEncoder.predict's scores, or are refused (issue 24 item 3).

Token type ids reach the model exactly when Transformers' tokenizer sends them (its
model_input_names), whatever the tokenizer.json's template numbers a pair's segments; the export
checks its logits and scores against CrossEncoder.predict on real pairs and refuses a mismatch.
Tiny random models with initializer_range 0.2, so that logits are far from zero and a wrong type
id moves them well past any rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import tiny_models
import tokenizer_fixtures
import torch
import transformers

import tsrunner
from tsrunner import manifest as manifest_module
from tsrunner import model_source, sample_text

sentence_transformers = pytest.importorskip("sentence_transformers")

QUERY = sample_text.sample(1, offset=90)[0]
PASSAGES = sample_text.sample(8, offset=200)


def save_cross_encoder(directory: Path, family: str, tokenizer: Path | str) -> Path:
    """A one-label `family` reranker (type_vocab_size 2) saved by sentence-transformers'
    CrossEncoder; `tokenizer` is a directory to copy it from or a tokenizer_fixtures style."""
    spec = tiny_models.family(family)
    settings = {**spec.config, "type_vocab_size": 2, "num_labels": 1, "initializer_range": 0.2}
    config = getattr(transformers, spec.config_class)(**settings)
    torch.manual_seed(3)
    model_class = getattr(transformers, spec.tasks["text-classification"])
    model_class(config).eval().save_pretrained(directory / "raw")
    if isinstance(tokenizer, Path):
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (directory / "raw" / name).write_bytes((tokenizer / name).read_bytes())
    else:
        tokenizer_fixtures.save_pretrained(tokenizer, directory / "raw")
    sentence_transformers.CrossEncoder(str(directory / "raw"), device="cpu").save(
        str(directory / "ce")
    )
    return directory / "ce"


@pytest.fixture(scope="module")
def deberta_reranker(tmp_path_factory) -> Path:
    """DeBERTa-v2 whose tokenizer (as Transformers 5 loads it) sends no token_type_ids."""
    return save_cross_encoder(tmp_path_factory.mktemp("deberta"), "DeBERTa-v2", "debertav2")


def predict_pairs(path: Path) -> torch.Tensor:
    runner = tsrunner.Runner(path)
    answers = runner.predict([QUERY] * len(PASSAGES), text_pairs=PASSAGES)
    return torch.tensor([answer["labels"][0]["score"] for answer in answers], dtype=torch.float64)


def test_type_ids_are_zeros_when_the_tokenizer_sends_none(deberta_reranker, tmp_path):
    reference = sentence_transformers.CrossEncoder(str(deberta_reranker), device="cpu")
    assert "token_type_ids" not in reference.tokenizer.model_input_names
    report = tsrunner.export(deberta_reranker, tmp_path / "ce.pt", max_length=64)
    assert [spec["name"] for spec in report.manifest["inputs"]] == ["input_ids", "attention_mask"]
    jsonschema.validate(report.manifest, manifest_module.schema())
    check = report.manifest["validation"]["cross_encoder"]
    assert check["passed"] and check["pairs"] >= 10
    assert check["logits_max_abs_diff"] <= 1e-5 and check["scores_max_abs_diff"] <= 1e-5
    assert "CrossEncoder.predict on" in report.summary()

    want = torch.tensor(reference.predict([(QUERY, p) for p in PASSAGES]), dtype=torch.float64)
    got = predict_pairs(report.output)
    assert (got - want).abs().max() <= 1e-5
    assert got.argsort(descending=True).tolist() == want.argsort(descending=True).tolist()


def test_type_ids_are_sent_when_the_tokenizer_sends_them(tiny_bert_dir, tmp_path):
    directory = save_cross_encoder(tmp_path, "BERT", tiny_bert_dir)
    reference = sentence_transformers.CrossEncoder(str(directory), device="cpu")
    assert "token_type_ids" in reference.tokenizer.model_input_names
    report = tsrunner.export(directory, tmp_path / "ce.pt", max_length=64)
    assert "token_type_ids" in [spec["name"] for spec in report.manifest["inputs"]]
    assert report.manifest["validation"]["cross_encoder"]["passed"]
    want = torch.tensor(reference.predict([(QUERY, p) for p in PASSAGES]), dtype=torch.float64)
    assert (predict_pairs(report.output) - want).abs().max() <= 1e-5


def test_model_input_names_in_tokenizer_config_are_followed(tiny_bert_dir, tmp_path):
    """A BERT reranker saved with model_input_names without token_type_ids (as some are)."""
    directory = save_cross_encoder(tmp_path, "BERT", tiny_bert_dir)
    config_file = directory / "tokenizer_config.json"
    settings = json.loads(config_file.read_text())
    config_file.write_text(
        json.dumps({**settings, "model_input_names": ["input_ids", "attention_mask"]})
    )
    assert not model_source.tokenizer_sends_type_ids(directory)
    report = tsrunner.export(directory, tmp_path / "ce.pt", max_length=64)
    assert "token_type_ids" not in [spec["name"] for spec in report.manifest["inputs"]]
    reference = sentence_transformers.CrossEncoder(str(directory), device="cpu")
    want = torch.tensor(reference.predict([(QUERY, p) for p in PASSAGES]), dtype=torch.float64)
    assert (predict_pairs(report.output) - want).abs().max() <= 1e-5


def test_a_reranker_that_scores_otherwise_is_refused(deberta_reranker, tmp_path, monkeypatch):
    """Sending the template's type ids anyway (what exports did before) is caught by the check
    against CrossEncoder.predict: one line, nothing written."""
    monkeypatch.setattr(model_source, "tokenizer_sends_type_ids", lambda *_a, **_k: True)
    output = tmp_path / "ce.pt"
    with pytest.raises(tsrunner.ExportError) as caught:
        tsrunner.export(deberta_reranker, output, max_length=64)
    message = str(caught.value)
    assert "differ from CrossEncoder.predict" in message and "nothing was written" in message
    assert "\n" not in message
    assert not output.exists()
