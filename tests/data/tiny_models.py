"""Tiny random models of every family the exporter supports, one directory per (family, task),
the way Transformers' own tests build them: 2 layers, hidden size 32, random weights.

Each directory is saved with the task's own class, so `--task auto` finds the task in the
config's architectures and a fresh load gives the same weights (for parity checks). Families
that ship a WordPiece vocabulary share all-MiniLM-L6-v2's tokenizer; the others get, on request
(`family_tokenizers=True`), a tokenizer in their family's real format made offline by
tokenizer_fixtures.py (byte-level BPE for RoBERTa, BART and GPT-2; SentencePiece Unigram for
XLM-R, T5, ALBERT and DeBERTa-v2), else none.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    tokenizer: bool = False  # share MiniLM's WordPiece tokenizer (vocab 30522)
    tokenizer_style: str | None = None  # else tokenizer_fixtures' style for this family
    extra: dict[str, Any] = field(default_factory=dict)


_ENCODER = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}

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
        tokenizer=True,
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
        tokenizer=True,
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
        tokenizer_style="roberta",
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
        tokenizer_style="xlmr",
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
        tokenizer=True,
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
        tokenizer_style="albert",
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
        tokenizer_style="debertav2",
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
        tokenizer=True,
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
        tokenizer_style="gpt2",
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
        tokenizer_style="roberta",
    ),
    Family(
        "T5",
        "T5Config",
        {
            "vocab_size": SMALL_VOCAB,
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 37,
            "num_layers": 2,
            "num_heads": 4,
            "relative_attention_num_buckets": 8,
            "decoder_start_token_id": 0,
        },
        {"text2text": "T5ForConditionalGeneration", "feature-extraction": "T5Model"},
        tokenizer_style="t5",
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
    family_name: str,
    task: str,
    directory: Path,
    *,
    tokenizer_source: Path | None,
    seed: int = 0,
    family_tokenizers: bool = False,
) -> Path:
    """Saves a tiny random `family_name` model for `task` into `directory`: with MiniLM's
    tokenizer (from `tokenizer_source`) for WordPiece families, with the family's own format's
    tokenizer when `family_tokenizers`, else with none."""
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
    if spec.tokenizer and tokenizer_source is not None:
        for name in TOKENIZER_FILES:
            shutil.copy(tokenizer_source / name, directory / name)
    if spec.tokenizer_style and family_tokenizers:
        import tokenizer_fixtures

        tokenizer_fixtures.save_pretrained(spec.tokenizer_style, directory)
    return directory


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
    from_text: str = "-"  # from_text.check's answer: "yes", "no: why"
    # causal-lm and text2text: "yes" when the export carries generation methods (manifest
    # "generation": Runner.generate, tsrun --text, tsrun serve's /v1/completions), else "not yet".
    generates: str = "-"

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
    import transformers

    from tsrunner.tasks import TASKS

    task = manifest["task"]
    model = getattr(transformers, TASKS[task].auto_class).from_pretrained(directory).eval()
    if task == "feature-extraction" and getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    kwargs = {"use_cache": False} if task in ("causal-lm", "text2text") else {}
    with torch.inference_mode():
        outputs = model(**inputs, **kwargs, return_dict=True)
    return [outputs[o["name"]] for o in manifest["outputs"]]


def run_case(
    family_name: str,
    task: str,
    workdir: Path,
    *,
    tokenizer_source: Path | None,
    family_tokenizers: bool = False,
) -> CaseResult:
    """Builds the model, exports it with --task auto, and compares the C++ runner with eager
    (with `family_tokenizers`, from text too)."""
    import warnings

    import tsrunner

    result = CaseResult(family_name, task)
    directory = make_model(
        family_name,
        task,
        workdir / f"{family_name}-{task}",
        tokenizer_source=tokenizer_source,
        family_tokenizers=family_tokenizers,
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
    if task in ("causal-lm", "text2text"):
        result.generates = "yes" if "generation" in manifest else "not yet"
    inputs = parity_inputs(manifest)
    got = tsrunner.Runner(path).run(inputs)
    want = eager_outputs(directory, manifest, inputs)
    result.parity = max(
        float((got[o["name"]].double() - w.double()).abs().max())
        for o, w in zip(manifest["outputs"], want, strict=True)
    )
    if family_tokenizers:
        import from_text

        try:
            result.from_text = from_text.check(directory, path, task)
        except AssertionError as error:  # runs from text, answers differently
            result.from_text = f"NO: {error}"
    return result


PT2_MATRIX = Path(__file__).parents[2] / "docs" / "support-matrix-pt2.md"


def read_pt2_matrix(path: Path = PT2_MATRIX) -> dict[tuple[str, str], list[str]]:
    """The rows `make support-matrix-pt2` wrote, by (family, task): its six cells (family, task,
    exports to .pt2, shape contract / why not, C++ parity, export + compile s)."""
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 6 and line.startswith("| ") and cells[0] not in ("family", "---"):
                rows[(cells[0], cells[1])] = cells
    return rows


def _pt2_answer(cells: list[str] | None) -> str:
    if cells is None:
        return "not run"
    if cells[2] == "yes" and cells[4].startswith("yes"):
        return "yes"
    return f"no: {cells[3]}" if cells[2] == "no" else f"parity: {cells[4]}"


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
        "This is the TorchScript (`.pt`) matrix. Its **.pt2** column is read from",
        "[support-matrix-pt2.md](support-matrix-pt2.md), where AOTInductor exports (`--format",
        "aoti`) of the same models are checked the same way (C++ runner against eager): one",
        "compile takes minutes here, so `make support-matrix-pt2` writes it, outside `make test`.",
        "",
        "- **traces**: `tsrunner export` succeeded: traced, validated against the eager",
        "  model at every checked shape within atol 1e-4, saved and reloaded within that atol.",
        "- **shape contract**: what validation proved (`dynamic` with the validated sequence",
        "  range, or `fixed` at the traced length, which the C++ runner pads to).",
        "- **C++ parity**: `tsrunner.Runner` (libtsrunner) at an untraced shape (batch 3, 5",
        f"  tokens, a padded row) agrees with the eager Transformers model within {PARITY_ATOL:g}.",
        "- **from text**: the model, saved with a tokenizer in its family's real format",
        "  (MiniLM's WordPiece for BERT, DistilBERT, ELECTRA and MPNet; byte-level BPE trained",
        "  offline for RoBERTa, BART and GPT-2; SentencePiece Unigram converted by Transformers",
        "  for XLM-R, T5, ALBERT and DeBERTa-v2: `tests/data/tokenizer_fixtures.py`), runs from",
        "  text through `Runner.predict` and `tsrun --input` (JSON lines, pairs included), and",
        "  both give what the eager Transformers model gives fed by Transformers' tokenizer:",
        "  the same encodings and the same answers (`tests/data/from_text.py`); multiple-choice",
        '  takes a text with its choices. "no": why not.',
        "- **generates** (causal-lm and text2text): the export carries prefill and decode",
        "  methods with an explicit KV cache, so `Runner.generate`, `tsrun MODEL --text` and",
        "  `tsrun serve`'s `/v1/completions`, `/generate` and `/generate_stream` generate from it",
        "  (docs/generation.md). Llama, Qwen2 and Mistral decoders, not families of this table,",
        "  generate too: greedy output token for token HF `generate`'s",
        "  (`tests/python/test_generate.py`).",
        "",
        "| family | task | traces | shape contract | C++ parity | from text | generates | .pt2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    pt2 = read_pt2_matrix()
    for result in results:
        traces = "yes" if result.error is None else f"no: {result.error}"
        parity = "yes" if result.ok else ("-" if result.error else "NO")
        from_text = result.from_text.splitlines()[0] if result.from_text else "-"
        lines.append(
            f"| {result.family} | {result.task} | {traces} | {result.contract or '-'} | {parity} "
            f"| {from_text} | {result.generates} "
            f"| {_pt2_answer(pt2.get((result.family, result.task)))} |"
        )
    tasks = sorted({r.task for r in results}, key=list(TASKS).index)
    lines += ["", f"Tasks covered: {', '.join(tasks)}.", ""]
    return "\n".join(lines)
