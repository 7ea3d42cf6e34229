"""Every family x task exports with --task auto, follows the schema, and runs through the C++
runner (tsrunner.Runner) at a shape other than the trace's, matching the eager model; the
committed support matrix is what these exports give.
"""

from __future__ import annotations

from pathlib import Path

import from_text
import jsonschema
import pytest
import tiny_models
import tokenizers
from tokenizer_fixtures import tokenizer_json

import tsrunner
from tsrunner import manifest as manifest_module
from tsrunner.tasks import TASKS

CASES = tiny_models.cases()


def _case_id(case: tuple[str, str]) -> str:
    return f"{case[0]}-{case[1]}"


def test_every_family_and_task_is_covered():
    families = {family for family, _ in CASES}
    assert families >= {
        "BERT",
        "DistilBERT",
        "RoBERTa",
        "XLM-RoBERTa",
        "ELECTRA",
        "ALBERT",
        "DeBERTa-v2",
        "MPNet",
        "GPT-2",
        "BART",
        "T5",
        "ViT",
    }
    assert {task for _, task in CASES} == set(TASKS)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_family_exports_with_auto_task(case, family_results):
    family, task = case
    result = family_results[case]
    assert result.error is None, result.error
    manifest = tsrunner.read_manifest(result.path)
    jsonschema.validate(manifest, manifest_module.schema())
    assert manifest["task"] == task, "--task auto must find the task in config.architectures"
    assert manifest["validation"]["passed"]
    assert result.shapes_checked >= 4
    if TASKS[task].has_labels:
        assert manifest["labels"] == ["negative", "neutral", "positive"]
    else:
        assert "labels" not in manifest
    if task == "fill-mask":
        # The tokenizer's mask token: MiniLM's [MASK], or the family format's own.
        spec = tiny_models.family(family)
        if spec.tokenizer:
            expected = 103
        else:
            vocab = tokenizers.Tokenizer.from_str(tokenizer_json(spec.tokenizer_style))
            expected = vocab.token_to_id("[MASK]") or vocab.token_to_id("<mask>")
        assert expected is not None
        assert manifest["mask_token_id"] == expected
    roles = [spec["role"] for spec in manifest["inputs"]]
    if family == "ViT":
        assert roles == ["pixel_values"]
        assert manifest["inputs"][0]["shape"] == ["batch", 3, 32, 32]
        assert manifest["inputs"][0]["dtype"] == "float32"
        assert manifest["image"]["height"] == 32
    else:
        assert roles[:2] == ["token_ids", "attention_mask"]
    if task == "text2text":
        assert roles[-1] == "decoder_token_ids"
        assert manifest["inputs"][-1]["shape"] == ["batch", "decoder_sequence"]
        assert manifest["outputs"][0]["shape"] == ["batch", "decoder_sequence", 1000]
    if task == "multiple-choice":
        assert manifest["inputs"][0]["shape"] == ["batch", "choices", "sequence"]
        assert manifest["outputs"][0]["shape"] == ["batch", "choices"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cpp_runner_matches_eager_at_an_untraced_shape(case, family_results):
    result = family_results[case]
    assert result.error is None, result.error
    assert result.parity is not None
    assert result.parity <= tiny_models.PARITY_ATOL


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_runs_from_text_like_transformers(case, family_results):
    """Runner.predict and tsrun --input answer from text as the eager model does on
    Transformers' tokenization, for every text task of every family with a tokenizer."""
    family, task = case
    answer = family_results[case].from_text
    if family != "ViT" and (task in from_text.TEXT_TASKS or task == "multiple-choice"):
        assert answer == "yes", answer
    else:  # generation and images: the reason is recorded
        assert answer.startswith("no: "), answer


def test_support_matrix_is_current(family_results):
    committed = (Path(__file__).parents[2] / "docs" / "support-matrix.md").read_text()
    rendered = tiny_models.render_matrix([family_results[case] for case in CASES])
    assert committed == rendered, (
        "docs/support-matrix.md is stale: run `python scripts/support_matrix.py`"
    )
