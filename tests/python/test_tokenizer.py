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


def test_from_json_without_truncation(minilm_dir):
    spec = json.loads((minilm_dir / "tokenizer.json").read_text())
    spec["truncation"] = None
    tokenizer = tsrunner.Tokenizer.from_json(json.dumps(spec))
    assert tokenizer.max_length is None
    assert len(tokenizer.encode("word " * 300)) == 302
    assert tsrunner.Tokenizer.from_json(json.dumps(spec), max_length=10).max_length == 10


def test_from_str_still_works_but_is_deprecated(minilm_dir):
    text = (minilm_dir / "tokenizer.json").read_text()
    with pytest.warns(DeprecationWarning, match="use Tokenizer.from_json"):
        old = tsrunner.Tokenizer.from_str(text, max_length=12)
    assert old.max_length == 12
    new = tsrunner.Tokenizer.from_json(text)
    assert old.encode("hello world").ids == new.encode("hello world").ids


def test_offsets_are_characters_in_python(minilm_dir):
    tokenizer = tsrunner.Tokenizer.from_file(minilm_dir / "tokenizer.json")
    text = "naïve café 中文"
    encoding = tokenizer.encode(text)
    assert [text[b:e] for b, e in encoding.offsets[1:-1]] == ["naïve", "café", "中", "文"]


def test_bpe_is_refused_with_a_clear_error(tmp_path):
    spec = {
        "version": "1.0",
        "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
        "added_tokens": [],
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(
        tsrunner.LoadError, match="native tokenization supports WordPiece; pass token ids"
    ):
        tsrunner.Tokenizer.from_file(path)


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
            '"pre_tokenizer": {"type": "Metaspace"}}',
            "pre_tokenizer Metaspace is not supported",
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
