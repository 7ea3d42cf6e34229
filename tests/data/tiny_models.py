"""Tiny random models of every family the exporter supports, one directory per (family, task),
the way Transformers' own tests build them: 2 layers, hidden size 32, random weights.

Each directory is saved with the task's own class, so `--task auto` finds the task in the
config's architectures and a fresh load gives the same weights (for parity checks). Families
that ship a WordPiece vocabulary share all-MiniLM-L6-v2's tokenizer; the others get a small
real-format tokenizer of their family's kind (tests/data/tokenizer_fixtures.py: byte-level BPE
for GPT-2, RoBERTa and BART, SentencePiece Unigram for XLM-R, T5, ALBERT and DeBERTa-v2), so
every text task runs from text.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizer_fixtures

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
SMALL_VOCAB = 1000


@dataclass(frozen=True)
class Family:
    name: str  # as in the support matrix
    config_class: str
    config: dict[str, Any]
    # task -> the Transformers class saved for it
    tasks: dict[str, str]
    # "minilm": MiniLM's WordPiece tokenizer (vocab 30522); else a tokenizer_fixtures style
    tokenizer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_ENCODER = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
_T5 = {
    "vocab_size": SMALL_VOCAB,
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "decoder_start_token_id": 0,
}

FAMILIES: tuple[Family, ...] = (
    Family(
        "BERT",
        "BertConfig",
        {"vocab_size": 30522, "hidden_size": 32, "max_position_embeddings": 128, **_ENCODER},
        {
            "feature-extraction": "BertModel",
            "fill-mask": "BertForMaskedLM",
            "text-classification": "BertForSequenceClassification",
            "token-classification": "BertForTokenClassification",
            "question-answering": "BertForQuestionAnswering",
            "multiple-choice": "BertForMultipleChoice",
        },
        tokenizer="minilm",
    ),
    Family(
        "DistilBERT",
        "DistilBertConfig",
        {
            "vocab_size": 30522,
            "dim": 32,
            "n_layers": 2,
            "n_heads": 4,
            "hidden_dim": 37,
            "max_position_embeddings": 128,
        },
        {
            "feature-extraction": "DistilBertModel",
            "fill-mask": "DistilBertForMaskedLM",
            "text-classification": "DistilBertForSequenceClassification",
            "question-answering": "DistilBertForQuestionAnswering",
        },
        tokenizer="minilm",
    ),
    Family(
        "RoBERTa",
        "RobertaConfig",
        {
            "vocab_size": SMALL_VOCAB,
            "hidden_size": 32,
            "max_position_embeddings": 130,
            "type_vocab_size": 1,
            "pad_token_id": 1,
            **_ENCODER,
        },
        {
            "fill-mask": "RobertaForMaskedLM",
            "text-classification": "RobertaForSequenceClassification",
            "token-classification": "RobertaForTokenClassification",
        },
        tokenizer="roberta",
    ),
    Family(
        "XLM-RoBERTa",
        "XLMRobertaConfig",
        {
            "vocab_size": SMALL_VOCAB,
            "hidden_size": 32,
            "max_position_embeddings": 130,
            "type_vocab_size": 1,
            "pad_token_id": 1,
            **_ENCODER,
        },
        {
            "fill-mask": "XLMRobertaForMaskedLM",
            "text-classification": "XLMRobertaForSequenceClassification",
        },
        tokenizer="xlmr",
    ),
    Family(
        "ELECTRA",
        "ElectraConfig",
        {
            "vocab_size": 30522,
            "embedding_size": 16,
            "hidden_size": 32,
            "max_position_embeddings": 128,
            **_ENCODER,
        },
        {
            "text-classification": "ElectraForSequenceClassification",
            "question-answering": "ElectraForQuestionAnswering",
        },
        tokenizer="minilm",
    ),
    Family(
        "ALBERT",
        "AlbertConfig",
        {
            "vocab_size": SMALL_VOCAB,
            "embedding_size": 16,
            "hidden_size": 32,
            "max_position_embeddings": 128,
            **_ENCODER,
        },
        {
            "fill-mask": "AlbertForMaskedLM",
            "text-classification": "AlbertForSequenceClassification",
        },
        tokenizer="albert",
    ),
    Family(
        "DeBERTa-v2",
        "DebertaV2Config",
        {
            "vocab_size": SMALL_VOCAB,
            "hidden_size": 32,
            "max_position_embeddings": 128,
            "relative_attention": True,
            "position_buckets": 16,
            "pos_att_type": ["p2c", "c2p"],
            **_ENCODER,
        },
        {
            "fill-mask": "DebertaV2ForMaskedLM",
            "text-classification": "DebertaV2ForSequenceClassification",
            "question-answering": "DebertaV2ForQuestionAnswering",
        },
        tokenizer="debertav2",
    ),
    Family(
        "MPNet",
        "MPNetConfig",
        {"vocab_size": 30527, "hidden_size": 32, "max_position_embeddings": 130, **_ENCODER},
        {
            "feature-extraction": "MPNetModel",
            "fill-mask": "MPNetForMaskedLM",
            "text-classification": "MPNetForSequenceClassification",
        },
        tokenizer="minilm",
    ),
    Family(
        "GPT-2",
        "GPT2Config",
        {
            "vocab_size": SMALL_VOCAB,
            "n_embd": 32,
            "n_layer": 2,
            "n_head": 4,
            "n_positions": 64,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        {
            "causal-lm": "GPT2LMHeadModel",
            "text-classification": "GPT2ForSequenceClassification",
        },
        tokenizer="gpt2",
    ),
    Family(
        "BART",
        "BartConfig",
        {
            "vocab_size": SMALL_VOCAB,
            "d_model": 32,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 37,
            "decoder_ffn_dim": 37,
            "max_position_embeddings": 64,
        },
        {"text2text": "BartForConditionalGeneration", "feature-extraction": "BartModel"},
        tokenizer="roberta",
    ),
    Family(
        "T5",
        "T5Config",
        _T5,
        {"text2text": "T5ForConditionalGeneration", "feature-extraction": "T5Model"},
        tokenizer="t5",
    ),
    # The text encoder saved alone (diffusion models, sentence-T5).
    Family(
        "T5 encoder",
        "T5Config",
        _T5,
        {"feature-extraction": "T5EncoderModel"},
        tokenizer="t5",
    ),
    Family(
        "ViT",
        "ViTConfig",
        {"image_size": 32, "patch_size": 8, "hidden_size": 32, **_ENCODER},
        {"image-classification": "ViTForImageClassification", "feature-extraction": "ViTModel"},
    ),
)


def family(name: str) -> Family:
    return next(f for f in FAMILIES if f.name == name)


def cases() -> list[tuple[str, str]]:
    """Every (family, task) pair, in support-matrix order."""
    return [(f.name, task) for f in FAMILIES for task in f.tasks]


def make_model(
    family_name: str, task: str, directory: Path, *, tokenizer_source: Path | None, seed: int = 0
) -> Path:
    """Saves a tiny random `family_name` model for `task` into `directory`."""
    import torch
    import transformers

    spec = family(family_name)
    settings = dict(spec.config)
    if task in ("text-classification", "token-classification", "image-classification"):
        settings["id2label"] = dict(LABELS)
        settings["label2id"] = {label: i for i, label in LABELS.items()}
    config = getattr(transformers, spec.config_class)(**settings)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.tasks[task])(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if spec.tokenizer == "minilm" and tokenizer_source is not None:
        for name in TOKENIZER_FILES:
            shutil.copy(tokenizer_source / name, directory / name)
    elif spec.tokenizer:
        text = tokenizer_fixtures.tokenizer_json(spec.tokenizer, directory.parent / "tokenizers")
        (directory / "tokenizer.json").write_text(text, encoding="utf-8")
    return directory


def mask_token_id(family_name: str, directory: Path) -> int | None:
    """The mask token of the family's tokenizer ([MASK] or <mask>), None without one."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    for token in json.loads(path.read_text(encoding="utf-8"))["added_tokens"]:
        if token["content"] in ("[MASK]", "<mask>"):
            return int(token["id"])
    return None


# Tasks Runner.predict takes text for (the others take ids: generation, multiple choice).
TEXT_TASKS = (
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "token-classification",
    "question-answering",
)


def check_from_text(path: Path, directory: Path, manifest: dict[str, Any]) -> str:
    """ "yes" when the export runs `task` from text: its embedded tokenizer encodes a few real
    texts (pairs for question answering) exactly as HF `tokenizers` does with the export's
    truncation, and Runner.predict answers every text; "-" when it takes ids only."""
    import tokenizers

    import tsrunner
    from tsrunner import sample_text

    task = manifest["task"]
    if task not in TEXT_TASKS or manifest.get("tokenizer") is None:
        return "-"
    texts = sample_text.sample(4, offset=11)
    pairs = None
    if task == "question-answering":  # short questions, real contexts (cut into windows)
        texts = ["What is it?", "Who?", "Which module?", "Why not?"]
        pairs = sample_text.sample(4, offset=23)
    native = tsrunner.Tokenizer.from_file(path)
    if task == "fill-mask":
        mask = native.id_to_token(manifest["mask_token_id"])
        texts = [
            f"{text} {mask} end" if i % 2 else f"{mask} {text}" for i, text in enumerate(texts)
        ]
    reference = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(manifest["max_length"])
    for i, text in enumerate(texts):
        pair = pairs[i] if pairs else None
        got = native.encode(text, pair)
        want = reference.encode(text, pair)
        if (list(got.ids), list(got.type_ids)) != (want.ids, want.type_ids):
            return f"no: tokens of {text!r} differ from HF tokenizers"
    predictions = tsrunner.Runner(path).predict(texts, pairs)
    key = {
        "feature-extraction": "embedding",
        "fill-mask": "masks",
        "text-classification": "labels",
        "token-classification": "entities",
        "question-answering": "answer",
    }[task]
    if len(predictions) != len(texts) or not all(key in p for p in predictions):
        return "no: predict did not answer every text"
    if task == "fill-mask" and not all(p["masks"] for p in predictions):
        return "no: the mask token was not found"
    return "yes"


@dataclass
class CaseResult:
    """What exporting one (family, task) gave: the support matrix is rendered from these."""

    family: str
    task: str
    path: Path | None = None
    error: str | None = None  # the export's one-line error, when it failed
    contract: str = ""  # "dynamic 1..N" or "fixed N"
    parity: float | None = None  # max|C++ runner - eager| at an untraced shape
    shapes_checked: int = 0
    from_text: str = "-"  # check_from_text's verdict

    @property
    def ok(self) -> bool:
        return self.error is None and self.parity is not None and self.parity <= PARITY_ATOL


PARITY_ATOL = 1e-4
MAX_LENGTH = 16


def parity_inputs(manifest: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Inputs at a shape no export here traces: batch 3, 5 tokens, 3 choices, 4 decoder tokens,
    with row 1 padded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    sizes = {"batch": 3, "sequence": 5, "choices": 3, "decoder_sequence": 4}
    inputs = {}
    for spec in manifest["inputs"]:
        shape = [sizes[d] if isinstance(d, str) else d for d in spec["shape"]]
        if spec["role"] == "pixel_values":
            inputs[spec["name"]] = torch.rand(shape, generator=generator) * 2 - 1
        elif spec["role"] in ("token_ids", "decoder_token_ids"):
            low, high = spec["range"]
            inputs[spec["name"]] = torch.randint(low + 3, high, shape, generator=generator)
        elif spec["role"] == "attention_mask":
            mask = torch.ones(shape, dtype=torch.long)
            mask[1, ..., 3:] = 0
            inputs[spec["name"]] = mask
        else:
            inputs[spec["name"]] = torch.zeros(shape, dtype=torch.long)
    return inputs


def eager_outputs(directory: Path, manifest: dict[str, Any], inputs: dict[str, Any]) -> list:
    """The eager Transformers model's outputs for `inputs`, in manifest order."""
    import torch

    from tsrunner import model_source
    from tsrunner.tasks import TASKS

    task = manifest["task"]
    # Loaded as the exporter loads it (an encoder-decoder's features are its encoder's).
    directory, config = model_source.load_config(directory)
    model = model_source.load(directory, config, TASKS[task]).model
    kwargs = {"use_cache": False} if task in ("causal-lm", "text2text") else {}
    with torch.inference_mode():
        outputs = model(**inputs, **kwargs, return_dict=True)
    return [outputs[o["name"]] for o in manifest["outputs"]]


def run_case(
    family_name: str, task: str, workdir: Path, *, tokenizer_source: Path | None
) -> CaseResult:
    """Builds the model, exports it with --task auto, and compares the C++ runner with eager."""
    import warnings

    import tsrunner

    result = CaseResult(family_name, task)
    directory = make_model(
        family_name, task, workdir / f"{family_name}-{task}", tokenizer_source=tokenizer_source
    )
    path = workdir / f"{family_name}-{task}.pt"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            is_image = family(family_name).config_class == "ViTConfig"
            report = tsrunner.export(directory, path, max_length=None if is_image else MAX_LENGTH)
    except (tsrunner.ExportError, ValueError) as error:
        result.error = str(error)
        return result
    result.path = path
    manifest = report.manifest
    contract = manifest["shape_contract"]
    result.contract = (
        f"dynamic {contract['min_sequence']}..{contract['max_sequence']}"
        if contract["kind"] == "dynamic"
        else f"fixed {contract['max_sequence']}"
    )
    if "image" in manifest:
        result.contract = "any batch, fixed image size"
    result.shapes_checked = len(manifest["validation"]["checks"])
    inputs = parity_inputs(manifest)
    got = tsrunner.Runner(path).run(inputs)
    want = eager_outputs(directory, manifest, inputs)
    result.parity = max(
        float((got[o["name"]].double() - w.double()).abs().max())
        for o, w in zip(manifest["outputs"], want, strict=True)
    )
    result.from_text = check_from_text(path, directory, manifest)
    return result


def render_matrix(results: list[CaseResult]) -> str:
    """docs/support-matrix.md: family x task, from actual export results."""
    from tsrunner.tasks import TASKS

    lines = [
        "# Support matrix",
        "",
        "Generated by `python scripts/support_matrix.py` from actual exports of tiny random",
        "models (2 layers, hidden size 32; `tests/data/tiny_models.py`), exported with",
        f"`--task auto --max-length {MAX_LENGTH}`; `tests/python/test_families.py` fails when",
        "this file is stale. Do not edit by hand.",
        "",
        "- **traces**: `tsrunner export` succeeded: traced, validated against the eager",
        "  model at every checked shape within atol 1e-4, saved and reloaded bit for bit.",
        "- **shape contract**: what validation proved (`dynamic` with the validated sequence",
        "  range, or `fixed` at the traced length, which the C++ runner pads to).",
        "- **C++ parity**: `tsrunner.Runner` (libtsrunner) at an untraced shape (batch 3, 5",
        f"  tokens, a padded row) agrees with the eager Transformers model within {PARITY_ATOL:g}.",
        "- **from text**: `tsrun --text` and `Runner.predict` take text: the tokenizer embedded",
        "  in the export (MiniLM's WordPiece, or a small real-format byte-level BPE or",
        "  SentencePiece Unigram tokenizer of the family's kind) encodes real text exactly as HF",
        "  `tokenizers` does, and predict answers; `-`: the task takes token ids.",
        "",
        "| family | task | traces | shape contract | C++ parity | from text |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        traces = "yes" if result.error is None else f"no: {result.error}"
        parity = "yes" if result.ok else ("-" if result.error else "NO")
        lines.append(
            f"| {result.family} | {result.task} | {traces} | {result.contract or '-'} | {parity} "
            f"| {result.from_text} |"
        )
    tasks = sorted({r.task for r in results}, key=list(TASKS).index)
    lines += ["", f"Tasks covered: {', '.join(tasks)}.", ""]
    return "\n".join(lines)
