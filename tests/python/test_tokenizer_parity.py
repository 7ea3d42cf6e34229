"""The native tokenizer (tsrunner.Tokenizer, C++) against HF `tokenizers` on one tokenizer.json.

Every comparison covers ids, type ids, attention mask, tokens and (character) offsets.
"""

# ruff: noqa: RUF001  (look-alike characters are what a tokenizer test is made of)
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizer_fixtures
import tokenizers

import tsrunner
from tsrunner import sample_text

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

# (lowercase, strip_accents) of the MiniLM tokenizer.json and the variants derived from it.
VARIANTS = {
    "uncased": (True, None),  # MiniLM as shipped: strip_accents null follows lowercase
    "cased": (False, None),
    "cased-strip-accents": (False, True),
    "uncased-keep-accents": (True, False),
}


def _variant_json(minilm_dir: Path, lowercase: bool, strip_accents: bool | None) -> str:
    spec = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"]["lowercase"] = lowercase
    spec["normalizer"]["strip_accents"] = strip_accents
    return json.dumps(spec)


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair_of_tokenizers(request, minilm_dir):
    """(native, hf) loaded from the same JSON; HF pads batches to their longest like ours."""
    text = _variant_json(minilm_dir, *VARIANTS[request.param])
    native = tsrunner.Tokenizer.from_json(text)
    reference = tokenizers.Tokenizer.from_str(text)
    reference.no_padding()
    return native, reference


_as_tuple = tokenizer_fixtures.encoding_fields


def _batch_mismatches(native, reference, texts, pairs=None):
    """Indices of the texts whose native and HF encodings differ (padded batches)."""
    reference.enable_padding(pad_id=0, pad_token="[PAD]")
    try:
        inputs = list(zip(texts, pairs, strict=True)) if pairs is not None else texts
        expected = reference.encode_batch(inputs)
    finally:
        reference.no_padding()
    actual = native.encode_batch(texts, pairs)
    assert len(actual) == len(expected)
    return [
        i
        for i, (a, e) in enumerate(zip(actual, expected, strict=True))
        if _as_tuple(a) != _as_tuple(e)
    ]


def _assert_same(native, reference, text, pair=None):
    expected = reference.encode(text, pair) if pair is not None else reference.encode(text)
    assert _as_tuple(native.encode(text, pair)) == _as_tuple(expected), (text, pair)


def _code_points_in_context():
    """One text per BMP code point (surrogates cannot be in a UTF-8 string), in word contexts."""
    points = [cp for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    texts = [f"a{chr(cp)}b {chr(cp)} x{chr(cp)}{chr(cp)}y Caf{chr(cp)}é" for cp in points]
    return points, texts


def test_every_bmp_code_point_in_context(pair_of_tokenizers):
    native, reference = pair_of_tokenizers
    points, texts = _code_points_in_context()
    differing = {points[i] for i in _batch_mismatches(native, reference, texts)}
    # Character classes come from HF's own behaviour (scripts/hf_unicode_tables.py): no code
    # point is treated differently.
    assert differing == set(), sorted(f"U+{cp:04X}" for cp in differing)


def test_hf_unicode_tables_are_current_on_the_bmp():
    """cpp/src/tokenizer/hf_unicode_tables.inc is what the pinned HF tokenizers does (BMP here;
    `make unicode-check` checks every code point)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "hf_unicode_tables.py"), "--check", "--bmp"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_ten_thousand_lines_of_real_text(pair_of_tokenizers):
    native, reference = pair_of_tokenizers
    lines = list(sample_text.lines())
    assert len(lines) >= 10_000
    assert _batch_mismatches(native, reference, lines) == []


def test_real_text_as_pairs_and_paragraphs(pair_of_tokenizers):
    native, reference = pair_of_tokenizers
    lines = list(sample_text.lines())[:4000]
    assert _batch_mismatches(native, reference, lines[0::2], lines[1::2]) == []
    paragraphs = [" ".join(lines[i : i + 12]) for i in range(0, len(lines), 12)]  # truncated
    assert _batch_mismatches(native, reference, paragraphs) == []


# The original BERT tokenizer's tests (google-research/bert tokenization_test.py), run through
# both tokenizers; the token lists that do not depend on the vocabulary are checked too.
BERT_GOLDEN = [
    (" \tHeLLo!how  \n Are yoU?  ", ["hello", "!", "how", "are", "you", "?"]),
    ("H\u00e9llo", ["hello"]),
    ("ah\u535a\u63a8zz", None),
    ("UNwant\u00e9d,running", None),
    ("unwanted running", None),
    ("unwantedX running", None),
    ("", []),
]


@pytest.mark.parametrize(("text", "golden"), BERT_GOLDEN)
def test_bert_golden_cases(pair_of_tokenizers, text, golden):
    native, reference = pair_of_tokenizers
    _assert_same(native, reference, text)
    if golden is not None and native.encode("HÉLLo").tokens[1] == "hello":  # lowercase, no accents
        assert native.encode(text).tokens[1:-1] == golden


EDGE_CASES = [
    "a" * 100,  # max_input_chars_per_word: still tokenized
    "a" * 101,  # one more: [UNK]
    "é" * 100 + " " + "é" * 101,
    "x" * 99 + "\u0301",  # 100 characters with a combining mark
    "中文字符测试，汉字！今天天气很好。",
    "日本語のテキストとカタカナ、ひらがな",
    "한국어 텍스트 정규화",
    "e\u0301 a\u0308 o\u0302\u0323 \u1e69 \u0344 \u0f73",  # combining marks, reordering
    "zero\u200bwidth\u200cjoin\u200dner\ufeffbom\u2060word",
    "ctrl\x00\x01\x07\x1b\x7f\x85\u0090chars\ufffd\ufffe",
    "tabs\tnew\nlines\r\n\x0b\x0c\u2028\u2029 spaces\u00a0\u3000\u2003end",
    "[CLS] [SEP] [MASK] [PAD] [UNK] literal specials",
    "glued[MASK]token[SEP][SEP]x [cls] [ CLS ] [CLS",
    "İstanbul ΣΊΣΥΦΟΣ Straße ǅ ﬁ Ⅻ ＡＢＣ",
    "$100 + 5% = <tag> ^_^ `code` | ~ @user #hash {a:b}",
    "«quotes» „German“ ‘single’ — dash – en ‒ figure … ellipsis ¿qué? ¡sí!",
    "emoji 😀👍🏽 👨‍👩‍👧 flags 🇫🇷 math 𝐀𝐁𝐂 𝔘𝔫𝔦",
    "   ",
    "",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases(pair_of_tokenizers, text):
    native, reference = pair_of_tokenizers
    _assert_same(native, reference, text)
    _assert_same(native, reference, text, "and a pair")
    _assert_same(native, reference, "a first text", text)


def test_words_of_100_and_101_characters(pair_of_tokenizers):
    native, _ = pair_of_tokenizers
    assert native.encode("a" * 100).tokens != ["[CLS]", "[UNK]", "[SEP]"]
    assert native.encode("a" * 101).tokens == ["[CLS]", "[UNK]", "[SEP]"]
    assert native.encode("a" * 101).offsets[1] == (0, 101)


def test_special_tokens_typed_as_text_are_special(pair_of_tokenizers):
    native, _ = pair_of_tokenizers
    encoding = native.encode("a [MASK] b")
    assert encoding.tokens == ["[CLS]", "a", "[MASK]", "b", "[SEP]"]
    assert encoding.offsets[2] == (2, 8)


@pytest.mark.parametrize(
    ("first_words", "second_words"), [(200, 3), (3, 200), (150, 150), (60, 70), (0, 300), (127, 0)]
)
def test_pair_truncation_longest_first(pair_of_tokenizers, first_words, second_words):
    native, reference = pair_of_tokenizers
    first = " ".join(f"w{i}" for i in range(first_words))
    second = " ".join(f"v{i}" for i in range(second_words))
    _assert_same(native, reference, first, second)
    assert len(native.encode(first, second)) <= 128


def test_single_truncation_keeps_room_for_special_tokens(pair_of_tokenizers):
    native, reference = pair_of_tokenizers
    text = "word " * 500
    encoding = native.encode(text)
    assert len(encoding) == 128 and encoding.tokens[-1] == "[SEP]"
    _assert_same(native, reference, text)


def test_batch_padding_and_type_ids(pair_of_tokenizers):
    native, reference = pair_of_tokenizers
    texts, pairs = ["short", "a somewhat longer text here", ""], ["x", "", "pair only"]
    assert _batch_mismatches(native, reference, texts, pairs) == []
    batch = native.encode_batch(texts, pairs)
    assert len({len(e) for e in batch}) == 1
    assert batch[0].attention_mask[-1] == 0 and batch[0].ids[-1] == native.pad_id
    assert batch[0].type_ids[:5] == [0, 0, 0, 1, 1]
    assert [len(e) for e in native.encode_batch(["a"], pad_to=16)] == [16]


QUESTIONS = ["Who?", "What is the name of the module that parses command lines?", "x " * 20]


@pytest.mark.parametrize("max_length", [32, 64, 128])
def test_context_windows_match_hf_overflowing_tokens(minilm_dir, max_length):
    """encode_windows == HF's truncation="only_second" + stride + overflowing encodings, the
    chunking Transformers' question-answering pipeline uses for long contexts."""
    text = _variant_json(minilm_dir, *VARIANTS["uncased"])
    native = tsrunner.Tokenizer.from_json(text, max_length=max_length)
    context = " ".join(sample_text.sample(30, offset=50))
    compared = 0
    for question in QUESTIONS:
        reference = tokenizers.Tokenizer.from_str(text)
        reference.no_padding()
        room = max_length - 3 - len(reference.encode(question, add_special_tokens=False).ids)
        for stride in sorted({0, 5, 16, max_length // 2, room - 1}):
            if not 0 <= stride < room:
                continue  # HF refuses a stride as long as the room left for the context
            reference.enable_truncation(max_length, stride=stride, strategy="only_second")
            first = reference.encode(question, context)
            expected = [first, *first.overflowing]
            actual = native.encode_windows(question, context, stride)
            assert [_as_tuple(a) for a in actual] == [_as_tuple(e) for e in expected]
            assert all(len(a) <= max_length for a in actual)
            compared += len(expected)
    assert compared > 3 * len(QUESTIONS)  # several windows per case, so the overlap is tested


def test_context_windows_edge_cases(minilm_dir):
    text = _variant_json(minilm_dir, *VARIANTS["uncased"])
    native = tsrunner.Tokenizer.from_json(text, max_length=16)
    reference = tokenizers.Tokenizer.from_str(text)
    reference.no_padding()
    reference.enable_truncation(16)
    # Fits: one encoding, the plain pair encoding.
    fits = native.encode_windows("who", "a short context", 4)
    assert [_as_tuple(e) for e in fits] == [_as_tuple(reference.encode("who", "a short context"))]
    # A stride as long as the room left (HF raises) shrinks to half of it: windows still cover
    # the whole context, in order, each with the whole question.
    question = "one two three four five six seven eight nine ten"  # 10 tokens: room 3
    context = " ".join(f"w{i}" for i in range(10))
    windows = native.encode_windows(question, context, 8)
    pieces = [[t for t, s in zip(w.tokens, w.sequence_ids, strict=True) if s == 1] for w in windows]
    reference.no_truncation()
    whole = reference.encode(context, add_special_tokens=False).tokens  # 20 tokens
    assert all(len(p) == 3 for p in pieces[:-1]) and len(pieces) > 5
    assert pieces[0] + [t for p in pieces[1:] for t in p[1:]] == whole  # overlap 1 = 3 // 2
    assert all(w.tokens[1:11] == windows[0].tokens[1:11] for w in windows)
    # No room at all for the context: a clear error, not an empty window.
    with pytest.raises(ValueError, match="none are left for its pair"):
        native.encode_windows("word " * 14, "context", 2)
