"""Tied weights (word embeddings = LM-head decoder): stored once by default, and --untie-weights
stores independent copies with equal values, as the original torchscript flag did."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tiny_models
import torch

import tsrunner

EMBEDDING = "bert.embeddings.word_embeddings.weight"
DECODER = "cls.predictions.decoder.weight"
UNTIE_ARGS = ("--max-length", "12", "--untie-weights")


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    return tiny_models.make_model(
        "BERT", "fill-mask", tmp_path_factory.mktemp("tied") / "bert-mlm", tokenizer_source=None
    )


@pytest.fixture(scope="module")
def exports(mlm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tied-exports")
    tied = tsrunner.export(mlm_dir, out / "tied.pt", max_length=8)
    with pytest.warns(UserWarning, match="training the export would desynchronise them"):
        untied = tsrunner.export(mlm_dir, out / "untied.pt", max_length=8, untie_weights=True)
    return tied, untied


def _unique_parameter_bytes(directory) -> tuple[int, int]:
    """Bytes of the model's distinct tensors, and of its word embedding matrix."""
    import transformers

    model = transformers.BertForMaskedLM.from_pretrained(directory)
    unique = sum(p.numel() * p.element_size() for p in model.parameters())  # deduplicated
    unique += sum(b.numel() * b.element_size() for b in model.buffers())
    embedding = model.get_input_embeddings().weight
    return unique, embedding.numel() * embedding.element_size()


def test_manifest_records_the_tied_group(exports):
    tied, untied = exports
    group = tied.manifest["tied_weights"][0]
    assert group == {"parameters": [EMBEDDING, DECODER], "untied": False}
    untied_group = untied.manifest["tied_weights"][0]
    assert untied_group == {"parameters": [EMBEDDING, DECODER], "untied": True}


def test_default_archive_stores_the_shared_tensor_once(exports, mlm_dir):
    tied, untied = exports
    unique, embedding = _unique_parameter_bytes(mlm_dir)
    # The archive is the unique tensors plus code and records (well under 10% for this model).
    assert unique <= tied.size_bytes <= unique * 1.1
    # Untied: one more copy of the embedding matrix (and of the small decoder bias).
    assert untied.size_bytes - tied.size_bytes >= embedding
    assert untied.size_bytes - tied.size_bytes <= embedding * 1.05


def test_untied_parameters_are_independent_with_equal_values(exports):
    tied, untied = exports
    tied_model = torch.jit.load(str(tied.output)).model
    untied_model = torch.jit.load(str(untied.output)).model
    tied_params = dict(tied_model.named_parameters())
    untied_params = dict(untied_model.named_parameters())
    assert DECODER not in tied_params, "TorchScript lists a shared tensor once"
    assert EMBEDDING in tied_params
    assert torch.equal(untied_params[EMBEDDING], untied_params[DECODER])
    assert untied_params[EMBEDDING].data_ptr() != untied_params[DECODER].data_ptr()
    ids = torch.tensor([[101, 7592, 103, 102]])
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    with torch.inference_mode():
        torch.testing.assert_close(
            torch.jit.load(str(tied.output))(ids, mask, types),
            torch.jit.load(str(untied.output))(ids, mask, types),
            rtol=0,
            atol=0,
        )


def test_cli_exports_an_encoder_decoder_untied_with_a_warning(tmp_path):
    """T5 ties its encoder and decoder embeddings and its LM head to one `shared` matrix."""
    directory = tiny_models.make_model("T5", "text2text", tmp_path / "t5", tokenizer_source=None)
    path = tmp_path / "t5.pt"
    result = subprocess.run(
        [sys.executable, "-m", "tsrunner", "export", directory, "-o", path, *UNTIE_ARGS],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "[ok] batch  2, sequence   12" in result.stdout
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("tsrunner: warning: untied weights:")
    assert "copies of shared.weight = encoder.embed_tokens.weight" in warning[0]
    assert warning[0].endswith("training the export would desynchronise them.")
    manifest = tsrunner.read_manifest(path)
    assert manifest["task"] == "text2text"
    assert manifest["tied_weights"] == [
        {
            "parameters": [
                "shared.weight",
                "encoder.embed_tokens.weight",
                "decoder.embed_tokens.weight",
                "lm_head.weight",
            ],
            "untied": True,
        }
    ]
