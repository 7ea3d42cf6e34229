"""examples/python/export_and_run.py: every task's section exports a tiny model and answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import make_fixtures
import pytest
import tiny_models
import torch
import transformers

import tsrunner

EXAMPLE = Path(__file__).parents[2] / "examples" / "python" / "export_and_run.py"
# The family each task's example runs on: BERT has a tokenizer; the others get in-vocab ids.
CASES = {
    "feature-extraction": "BERT",
    "fill-mask": "BERT",
    "text-classification": "BERT",
    "token-classification": "BERT",
    "question-answering": "BERT",
    "multiple-choice": "BERT",
    "causal-lm": "GPT-2",
    "text2text": "T5",
    "image-classification": "ViT",
}
LABELS = list(tiny_models.LABELS.values())


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("export_and_run", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_covers_every_task(example):
    from tsrunner.tasks import TASKS

    assert set(example.TASKS) == set(TASKS) == set(CASES)


@pytest.mark.parametrize("task", list(CASES))
def test_example_exports_and_runs(example, task, tmp_path, capsys):
    model = tiny_models.make_model(
        CASES[task], task, tmp_path / "model", tokenizer_source=make_fixtures.minilm_directory()
    )
    output = tmp_path / "model.pt"
    answer = example.main([str(model), "--task", task, "-o", str(output), "--max-length", "16"])
    printed = capsys.readouterr().out
    assert output.is_file() and f"{task}: {answer}" in printed

    if task == "feature-extraction":
        assert answer["dimensions"] == 32 and len(answer["similarity_to_first"]) == 2
        assert all(-1.0 <= s <= 1.0 for s in answer["similarity_to_first"])
    elif task == "fill-mask":
        assert len(answer["top5"]) == 5  # vocabulary tokens, not the "#id" of unknown ids
        assert not any(t.startswith("#") and t[1:].isdigit() for t in answer["top5"])
    elif task in ("text-classification", "image-classification"):
        assert answer["label"] in LABELS
    elif task == "token-classification":
        tokens = [token for token, _ in answer["tokens"]]
        assert tokens == ["[CLS]", "jim", "henson", "lived", "in", "new", "york", "[SEP]"]
        assert all(label in LABELS for _, label in answer["tokens"])
    elif task == "question-answering":
        assert 1 <= len(answer["answer_tokens"]) <= 16
    elif task == "multiple-choice":
        assert len(answer["scores"]) == 2 and sum(answer["scores"]) == pytest.approx(1.0)
    elif task == "causal-lm":
        # The runner's greedy tokens are the eager model's greedy tokens.
        ids = torch.tensor([answer["generated_ids"]])
        eager = transformers.GPT2LMHeadModel.from_pretrained(model).eval()
        with torch.inference_mode():
            for length in range(4, ids.shape[1]):
                assert int(eager(ids[:, :length]).logits[0, -1].argmax()) == int(ids[0, length])
    elif task == "text2text":
        assert len(answer["generated_ids"]) == 5
        assert all(0 <= i < tiny_models.SMALL_VOCAB for i in answer["generated_ids"])


def _train_tokenizer(directory, family: str) -> None:
    """A real-format tokenizer.json like the family's own: byte-level BPE (GPT-2) or Unigram with
    Metaspace and an </s> suffix (T5), trained on sample sentences, within the tiny vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from tsrunner import sample_text

    if family == "GPT-2":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
        )
    tokenizer.train_from_iterator(sample_text.sample(400), trainer)
    if family == "T5":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
        )
    assert tokenizer.get_vocab_size() <= tiny_models.SMALL_VOCAB
    tokenizer.save(str(directory / "tokenizer.json"))


@pytest.mark.parametrize(("family", "task"), [("GPT-2", "causal-lm"), ("T5", "text2text")])
def test_example_runs_models_with_their_own_tokenizer(example, family, task, tmp_path):
    model = tiny_models.make_model(family, task, tmp_path / "model", tokenizer_source=None)
    _train_tokenizer(model, family)
    output = tmp_path / "model.pt"
    answer = example.main([str(model), "--task", task, "-o", str(output), "--max-length", "16"])
    assert tsrunner.read_manifest(output)["tokenizer"] is not None  # it ran with the tokenizer
    assert len(answer["generated_ids"]) >= 5
    assert all(0 <= i < tiny_models.SMALL_VOCAB for i in answer["generated_ids"])
