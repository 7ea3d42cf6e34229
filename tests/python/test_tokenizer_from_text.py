"""Families beyond WordPiece run from text: a T5EncoderModel (the text encoder diffusion and
sentence-T5 models ship alone) with a SentencePiece Unigram tokenizer in T5's layout exports,
and Runner.predict takes text, its embedded tokenizer agreeing with HF `tokenizers`."""

from __future__ import annotations

import warnings

import tokenizer_fixtures
import tokenizers
import torch
import transformers

import tsrunner
from tsrunner import sample_text


def test_t5_encoder_exports_and_runs_from_text(tmp_path):
    config = transformers.T5Config(
        vocab_size=tokenizer_fixtures.VOCAB_SIZE,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.T5EncoderModel(config).eval()
    directory = tmp_path / "t5-encoder"
    model.save_pretrained(directory)
    text = tokenizer_fixtures.tokenizer_json("t5")
    (directory / "tokenizer.json").write_text(text, encoding="utf-8")
    path = tmp_path / "t5-encoder.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Failed before: "You must specify exactly one of input_ids or inputs_embeds".
        report = tsrunner.export(directory, path, max_length=32)
    assert report.manifest["task"] == "feature-extraction"
    texts = sample_text.sample(3, offset=5)
    native = tsrunner.Tokenizer.from_file(path)
    reference = tokenizers.Tokenizer.from_str(text)
    reference.no_padding()
    reference.enable_truncation(32)
    for line in texts:
        assert list(native.encode(line).ids) == reference.encode(line).ids
    predictions = tsrunner.Runner(path).predict(texts)
    assert [len(p["embedding"]) for p in predictions] == [32, 32, 32]
    # The embedding is the eager encoder's hidden states, mean-pooled.
    ids = torch.tensor([reference.encode(texts[0]).ids])
    with torch.inference_mode():
        hidden = model(input_ids=ids).last_hidden_state[0].mean(0)
    assert torch.allclose(torch.tensor(predictions[0]["embedding"]), hidden, atol=1e-4)
