"""sentence-transformers models give SentenceTransformer.encode's embeddings, or are refused.

Tiny random BERTs (hidden size 32, 2 layers) saved as SentenceTransformer directories with
every pooling mode, with and without Dense, LayerNorm, Normalize, prompts and a saved
max_seq_length; Runner.predict and tsrun must return encode()'s embeddings (cosine >= 0.9999).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tsrunner
from tsrunner import sample_text

sentence_transformers = pytest.importorskip("sentence_transformers")
st_modules = sentence_transformers.sentence_transformer.modules

HIDDEN = 32
# A long text next to short ones: truncation at the saved max_seq_length matters.
TEXTS = [*sample_text.sample(5, offset=40), " ".join(sample_text.sample(12, offset=60)), ""]


@pytest.fixture(scope="module")
def base_model(tiny_bert_dir) -> Path:
    return tiny_bert_dir


def save_sentence_transformer(
    base: Path,
    directory: Path,
    modes: str | tuple[str, ...],
    *,
    dense: int | None = None,
    layer_norm: bool = False,
    normalize: bool = False,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    max_seq_length: int | None = 24,
):
    """A SentenceTransformer over the tiny BERT, saved by sentence-transformers itself."""
    torch.manual_seed(1)
    modules = [st_modules.Transformer(str(base), max_seq_length=max_seq_length)]
    modules.append(st_modules.Pooling(HIDDEN, pooling_mode=modes))
    width = HIDDEN * (len(modes) if isinstance(modes, tuple) else 1)
    if dense:
        modules.append(st_modules.Dense(width, dense, activation_function=torch.nn.GELU()))
        width = dense
    if layer_norm:
        modules.append(st_modules.LayerNorm(width))
        torch.nn.init.normal_(modules[-1].norm.weight)
    if normalize:
        modules.append(st_modules.Normalize())
    model = sentence_transformers.SentenceTransformer(
        modules=modules, prompts=prompts, default_prompt_name=default_prompt_name, device="cpu"
    )
    model.save(str(directory))
    return sentence_transformers.SentenceTransformer(str(directory), device="cpu")


def cosines(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (actual * expected).sum(1) / (
        np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    )


CASES = {
    "mean": dict(modes="mean"),
    "cls-dense-normalize": dict(modes="cls", dense=16, normalize=True),
    "max-dense": dict(modes="max", dense=48),
    "mean_sqrt_len_tokens-layernorm": dict(modes="mean_sqrt_len_tokens", layer_norm=True),
    "weightedmean-normalize": dict(modes="weightedmean", normalize=True),
    "lasttoken": dict(modes="lasttoken", max_seq_length=None),
    "cls+mean-prompts": dict(
        modes=("cls", "mean"),
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name="query",
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, base_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("st") / request.param
    reference = save_sentence_transformer(base_model, directory, **CASES[request.param])
    report = tsrunner.export(directory, directory.parent / f"{request.param}.pt")
    return request.param, reference, report


def test_runner_predict_gives_encode_embeddings(exported):
    name, reference, report = exported
    runner = tsrunner.Runner(report.output, threads=1)
    prompts = [None, *CASES[name].get("prompts", {})]
    for prompt_name in prompts:
        expected = reference.encode(TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
        got = runner.predict(TEXTS, batch_size=3, prompt_name=prompt_name)
        actual = np.array([row["embedding"] for row in got], dtype=np.float32)
        assert actual.shape == expected.shape, (name, prompt_name)
        assert cosines(actual, expected).min() >= 0.9999, (name, prompt_name)
        assert np.abs(actual - expected).max() < 1e-4, (name, prompt_name)


def test_manifest_records_the_pipeline(exported):
    _, reference, report = exported
    record = report.manifest["sentence_embedding"]
    assert report.manifest["schema_version"] == 2
    assert record["output"] == "sentence_embedding"
    assert report.manifest["outputs"][-1]["name"] == "sentence_embedding"
    assert record["dimension"] == reference.get_embedding_dimension()
    types = [module["type"] for module in record["modules"]]
    assert types[:2] == ["Transformer", "Pooling"]
    assert record["max_seq_length"] == reference.max_seq_length == report.manifest["max_length"]
    assert record["prompts"] == reference.prompts
    assert record["default_prompt_name"] == reference.default_prompt_name
    assert record["reference"]["passed"] and record["reference"]["min_cosine"] >= 0.9999
    assert (
        record["reference"]["library"]
        == f"sentence-transformers {sentence_transformers.__version__}"
    )


@pytest.mark.parametrize("activation", [None, torch.nn.Identity()])
def test_cross_encoder_scores_equal_cross_encoder_predict(base_model, tmp_path, activation):
    """An ms-marco-style reranker: one-label BertForSequenceClassification, saved by
    CrossEncoder (sigmoid by default; Identity gives raw logits)."""
    import transformers

    torch.manual_seed(5)
    config = transformers.AutoConfig.from_pretrained(base_model, num_labels=1)
    classifier = transformers.BertForSequenceClassification(config).eval()
    classifier.save_pretrained(tmp_path / "raw")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (tmp_path / "raw" / name).write_bytes((base_model / name).read_bytes())
    cross_encoder = sentence_transformers.CrossEncoder(
        str(tmp_path / "raw"), device="cpu", activation_fn=activation
    )
    cross_encoder.save(str(tmp_path / "ce"))
    reference = sentence_transformers.CrossEncoder(str(tmp_path / "ce"), device="cpu")
    report = tsrunner.export(tmp_path / "ce", tmp_path / "ce.pt", max_length=48, batch_size=1)
    assert report.manifest["task"] == "text-classification"
    assert report.manifest["score_function"] == ("sigmoid" if activation is None else "none")
    queries = sample_text.sample(6, offset=90)
    passages = sample_text.sample(6, offset=200)
    expected = reference.predict(list(zip(queries, passages, strict=True)))
    got = tsrunner.Runner(report.output).predict(queries, passages)
    scores = np.array([row["labels"][0]["score"] for row in got])
    assert np.abs(scores - expected).max() <= 1e-5


@pytest.fixture(scope="module")
def prompted(base_model, tmp_path_factory):
    """A model with prompts, a default prompt and Dense + Normalize, exported once."""
    directory = tmp_path_factory.mktemp("prompted") / "prompted"
    reference = save_sentence_transformer(
        base_model,
        directory,
        "mean",
        dense=16,
        normalize=True,
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name="query",
    )
    return reference, tsrunner.export(directory, directory.parent / "prompted.pt").output


def test_tsrun_applies_prompts_like_encode(prompted, tsrun):
    reference, path = prompted
    text = TEXTS[0]
    for args, prompt_name in (([], None), (["--prompt-name", "passage"], "passage")):
        result = subprocess.run(
            [tsrun, str(path), "--text", text, *args], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        actual = np.array([json.loads(result.stdout)["embedding"]], dtype=np.float32)
        expected = reference.encode([text], prompt_name=prompt_name, convert_to_numpy=True)
        assert cosines(actual, expected).min() >= 0.9999, args
    unknown = subprocess.run(
        [tsrun, str(path), "--text", text, "--prompt-name", "summary"],
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        'tsrun: error: invalid input: unknown prompt name "summary"; this model has the prompts '
        "document, passage, query"  # sentence-transformers adds "document" (empty) itself
    ]


def test_info_shows_the_embedding_pipeline(prompted, tsrun):
    _, path = prompted
    for command in (
        [tsrun, "info", str(path)],
        [sys.executable, "-m", "tsrunner", "info", str(path)],
    ):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "max length  24\n" in result.stdout
        assert (
            "embedding   sentence_embedding [16]: Transformer -> Pooling(mean) -> "
            "Dense(32->16, GELU) -> Normalize" in result.stdout
        )
        assert 'query: "query: " (default)' in result.stdout
        assert "checked     against SentenceTransformer.encode (sentence-transformers" in (
            result.stdout
        )


def _edited(directory: Path, edit) -> Path:
    modules = json.loads((directory / "modules.json").read_text())
    edit(directory, modules)
    (directory / "modules.json").write_text(json.dumps(modules))
    return directory


def _set_config(path: Path, **changes) -> None:
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


REFUSALS = {
    "word-embeddings": (
        lambda d, m: m.insert(
            1,
            {
                "idx": 1,
                "name": "w",
                "path": "w",
                "type": "sentence_transformers.models.WordEmbeddings",
            },
        ),
        "sentence-transformers module w is a WordEmbeddings",
    ),
    "unknown-module": (
        lambda d, m: m.append({"idx": 9, "name": "x", "path": "9_X", "type": "my_code.Whitening"}),
        "sentence-transformers module 9_X is a Whitening",
    ),
    "include-prompt-false": (
        lambda d, m: _set_config(d / "1_Pooling" / "config.json", include_prompt=False),
        "module 1_Pooling excludes prompt tokens (include_prompt false)",
    ),
    "custom-activation": (
        lambda d, m: _set_config(
            d / "2_Dense" / "config.json", activation_function="my_code.Swish"
        ),
        "module 2_Dense has the activation my_code.Swish, which is not a torch.nn one",
    ),
    "normalize-tokens": (
        lambda d, m: _set_config(
            d / "3_Normalize" / "config.json", module_input_name="token_embeddings"
        ),
        "module 3_Normalize normalizes 'token_embeddings', not the embedding",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_cannot_be_reproduced_is_refused_in_one_line(case, base_model, tmp_path):
    directory = tmp_path / "st"
    save_sentence_transformer(base_model, directory, "mean", dense=16, normalize=True)
    edit, message = REFUSALS[case]
    _edited(directory, edit)
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", str(directory), "-o", str(tmp_path / "m.pt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsrunner: error: st: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "m.pt").exists()


def test_a_saved_max_seq_length_in_the_old_format_is_honoured(base_model, tmp_path):
    """sentence-transformers < 5 kept max_seq_length in sentence_bert_config.json."""
    directory = tmp_path / "old"
    save_sentence_transformer(base_model, directory, "mean", max_seq_length=None)
    _set_config(directory / "sentence_bert_config.json", max_seq_length=20)
    reference = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    assert reference.max_seq_length == 20
    report = tsrunner.export(directory, tmp_path / "old.pt")
    assert report.manifest["max_length"] == 20
    expected = reference.encode(TEXTS, convert_to_numpy=True)
    got = tsrunner.Runner(report.output).predict(TEXTS)
    actual = np.array([row["embedding"] for row in got], dtype=np.float32)
    assert cosines(actual, expected).min() >= 0.9999


def test_an_export_shorter_than_max_seq_length_warns(base_model, tmp_path):
    directory = tmp_path / "long"
    save_sentence_transformer(base_model, directory, "mean", max_seq_length=48)
    with pytest.warns(
        UserWarning,
        match="truncates texts at 16 tokens and sentence-transformers "
        "at 48: embeddings of longer texts differ from encode",
    ):
        report = tsrunner.export(directory, tmp_path / "short.pt", max_length=16)
    assert report.manifest["sentence_embedding"]["max_seq_length"] == 48
