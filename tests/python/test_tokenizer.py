"""tsrunner.Tokenizer: loading from an export or a file, errors, and the embedded settings."""

from __future__ import annotations

import json

import pytest
import tokenizers

import tsrunner


def test_from_export_uses_the_manifest_max_length(tiny_bert_pt, minilm_dir):
    tokenizer = tsrunner.Tokenizer.from_file(tiny_bert_pt)
    assert tokenizer.max_length == tsrunner.read_manifest(tiny_bert_pt)["max_length"] == 64
    assert len(tokenizer.encode("word " * 200)) == 64
    reference = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    reference.no_padding()
    expected = reference.encode("Who was Jim Henson? Jim Henson was a puppeteer.")
    assert tokenizer.encode("Who was Jim Henson? Jim Henson was a puppeteer.").ids == expected.ids


def test_from_tokenizer_json_uses_its_truncation(minilm_dir):
    tokenizer = tsrunner.Tokenizer.from_file(minilm_dir / "tokenizer.json")
    assert tokenizer.max_length == 128
    assert tokenizer.vocab_size == 30522
    assert tokenizer.token_to_id("[MASK]") == 103 and tokenizer.id_to_token(103) == "[MASK]"
    assert tokenizer.token_to_id("no-such-token") is None
    encoding = tokenizer.encode("Hello world")
    assert (encoding.ids, encoding.sequence_ids) == ([101, 7592, 2088, 102], [-1, 0, 0, -1])


def test_from_str_without_truncation(minilm_dir):
    spec = json.loads((minilm_dir / "tokenizer.json").read_text())
    spec["truncation"] = None
    tokenizer = tsrunner.Tokenizer.from_json(json.dumps(spec))
    assert tokenizer.max_length is None
    assert len(tokenizer.encode("word " * 300)) == 302
    assert tsrunner.Tokenizer.from_json(json.dumps(spec), max_length=10).max_length == 10


def test_offsets_are_characters_in_python(minilm_dir):
    tokenizer = tsrunner.Tokenizer.from_file(minilm_dir / "tokenizer.json")
    text = "naïve café 中文"
    encoding = tokenizer.encode(text)
    assert [text[b:e] for b, e in encoding.offsets[1:-1]] == ["naïve", "café", "中", "文"]


def test_unknown_models_are_refused_with_a_clear_error(tmp_path):
    spec = {"version": "1.0", "model": {"type": "Fancy", "vocab": {"a": 0}}, "added_tokens": []}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(
        tsrunner.LoadError,
        match=r"model Fancy is not supported .*WordPiece, BPE, Unigram and WordLevel.*; pass token",
    ):
        tsrunner.Tokenizer.from_file(path)


def test_bpe_with_dropout_is_refused(tmp_path):
    """Dropout makes BPE random: no export could promise the same ids twice."""
    spec = {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}
    with pytest.raises(tsrunner.LoadError, match="dropout is random and not supported"):
        tsrunner.Tokenizer.from_json(json.dumps(spec))


def test_byte_level_bpe_offsets_decode_and_word_ids():
    """A hand-made byte-level BPE: merges in both formats, byte offsets -> characters, decode."""
    alphabet = ["Ġ", "h", "i", "é", "Ã", "©"]  # é is the bytes C3 A9: "Ã©" in GPT-2's alphabet
    vocab = {token: i for i, token in enumerate([*alphabet, "hi", "Ġhi", "Ã©"])}
    spec = {
        "model": {"type": "BPE", "vocab": vocab, "merges": ["h i", ["Ġ", "hi"], "Ã ©"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "decoder": {"type": "ByteLevel"},
    }
    tokenizer = tsrunner.Tokenizer.from_json(json.dumps(spec))
    encoding = tokenizer.encode("hi hié")
    assert encoding.tokens == ["hi", "Ġhi", "Ã©"]
    assert encoding.offsets == [(0, 2), (2, 5), (5, 6)]  # characters; é is one
    assert encoding.word_ids == [0, 1, 1]
    assert tokenizer.decode(encoding.ids) == "hi hié"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON object"),
        ('{"model": {"type": "WordPiece", "vocab": {}}}', "vocab must be a non-empty object"),
        (
            '{"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}}',
            "unknown token \\[UNK\\] is not in the vocabulary",
        ),
        (
            '{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, '
            '"pre_tokenizer": {"type": "UnicodeScripts"}}',
            "pre_tokenizer UnicodeScripts is not supported",
        ),
    ],
)
def test_malformed_files_are_load_errors(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(tsrunner.LoadError, match=message):
        tsrunner.Tokenizer.from_file(path)


def test_missing_file_and_export_without_tokenizer(tmp_path):
    with pytest.raises(tsrunner.LoadError, match="not found"):
        tsrunner.Tokenizer.from_file(tmp_path / "missing.pt")


def test_batch_with_mismatched_pairs_is_invalid_input(minilm_dir):
    tokenizer = tsrunner.Tokenizer.from_file(minilm_dir / "tokenizer.json")
    with pytest.raises(ValueError, match="2 texts but 1 pairs"):
        tokenizer.encode_batch(["a", "b"], ["c"])
