"""Export a Transformers model for one task with tsrunner, then run it with the C++ runner.

    python examples/python/export_and_run.py MODEL_DIR --task TASK [-o model.pt]

TASK is one of feature-extraction, fill-mask, text-classification, token-classification,
question-answering, multiple-choice, causal-lm, text2text, image-classification. Each task has
its own section below: how to build its inputs and read its outputs. Texts are tokenized with
the tokenizer the export embeds: natively by tsrunner.Tokenizer where it can, else by Hugging
Face `tokenizers` from the same embedded tokenizer.json (GPT-2's byte-level BPE, T5's Unigram
until they run natively). An export without one gets fixed in-vocabulary ids here, where a real
application passes its own tokenizer's ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import tsrunner
from tsrunner.manifest import TOKENIZER_RECORD, read_archive_file

Inputs = dict[str, torch.Tensor]


class TextInputs:
    """Builds the export's named text inputs (by role, from the manifest)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.manifest = manifest
        self.tokenizer = load_tokenizer(path, manifest) if manifest["tokenizer"] else None
        self.names = {spec["role"]: spec["name"] for spec in manifest["inputs"]}

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> Inputs:
        """Token ids, attention mask (and type ids) of shape (len(texts), longest)."""
        if self.tokenizer is not None:
            encodings = self.tokenizer.encode_batch(texts, pairs)
            ids = torch.tensor([e.ids for e in encodings])
            types = torch.tensor([e.type_ids for e in encodings])
            mask = torch.tensor([e.attention_mask for e in encodings])
        else:  # no tokenizer in the export: one fixed id per word, within the vocabulary
            texts_and_pairs = zip(texts, pairs or [""] * len(texts), strict=True)
            words = [(t + " " + p).split() for t, p in texts_and_pairs]
            width = max(map(len, words))
            vocab = self.manifest["vocab_size"] or 100
            rows = [[5 + sum(map(ord, w)) % (vocab - 5) for w in ws] for ws in words]
            ids = torch.tensor([row + [row[-1]] * (width - len(row)) for row in rows])
            mask, types = torch.ones_like(ids), torch.zeros_like(ids)
        return self.named({"token_ids": ids, "attention_mask": mask, "token_type_ids": types})

    def named(self, by_role: Inputs) -> Inputs:
        return {self.names[role]: value for role, value in by_role.items() if role in self.names}

    def token(self, token_id: int) -> str:
        if self.tokenizer is not None:
            return self.tokenizer.id_to_token(token_id) or f"#{token_id}"
        return f"#{token_id}"


class HFTokenizer:
    """Hugging Face `tokenizers` reading the export's tokenizer.json, with tsrunner.Tokenizer's
    calls: padded to the batch's longest with the model's pad id, truncated to its max length."""

    def __init__(self, tokenizer_json: str, manifest: dict[str, Any]):
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        self.tokenizer.enable_padding(pad_id=manifest.get("pad_token_id") or 0)
        self.tokenizer.enable_truncation(manifest["max_length"])

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None):
        return self.tokenizer.encode_batch(list(zip(texts, pairs, strict=True)) if pairs else texts)

    def id_to_token(self, token_id: int) -> str | None:
        return self.tokenizer.id_to_token(token_id)


def load_tokenizer(path: Path, manifest: dict[str, Any]):
    """The export's tokenizer: native when this build runs it, else Hugging Face `tokenizers`."""
    try:
        return tsrunner.Tokenizer.from_file(path)
    except tsrunner.LoadError:  # a tokenizer model the native side does not run (yet)
        return HFTokenizer(read_archive_file(path, TOKENIZER_RECORD), manifest)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(summed, dim=-1)


# ---- one function per task: inputs in, answer out ---------------------------------------------


def feature_extraction(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    texts = ["Who was Jim Henson?", "Jim Henson was a puppeteer", "The market fell on Tuesday"]
    inputs = text.encode(texts)
    hidden = runner.run(inputs)[text.manifest["outputs"][0]["name"]]  # (batch, sequence, hidden)
    embeddings = mean_pool(hidden, inputs[text.names["attention_mask"]])
    similarity = (embeddings[0] @ embeddings[1:].T).tolist()
    return {"dimensions": embeddings.shape[1], "similarity_to_first": similarity}


def fill_mask(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    mask_id = text.manifest["mask_token_id"]
    mask = text.token(mask_id) if text.tokenizer is not None else "[MASK]"  # <mask> for RoBERTa
    inputs = text.encode([f"The capital of France is {mask} ."])
    ids = inputs[text.names["token_ids"]]
    if text.tokenizer is None:
        ids[0, 5] = mask_id  # where the tokenizer would have put [MASK]
    position = int((ids[0] == mask_id).nonzero()[0])
    logits = runner.run(inputs)["logits"][0, position]  # (vocab,)
    return {"top5": [text.token(int(i)) for i in logits.topk(5).indices]}


def text_classification(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    probabilities = runner.run(text.encode(["I loved this film!"]))["logits"][0].softmax(-1)
    best = int(probabilities.argmax())
    return {"label": text.manifest["labels"][best], "score": float(probabilities[best])}


def token_classification(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    inputs = text.encode(["Jim Henson lived in New York"])
    predicted = runner.run(inputs)["logits"][0].argmax(-1)  # one label per token
    ids = inputs[text.names["token_ids"]][0]
    labels = text.manifest["labels"]
    return {
        "tokens": [
            (text.token(int(t)), labels[int(p)]) for t, p in zip(ids, predicted, strict=True)
        ]
    }


def question_answering(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    inputs = text.encode(["Who created the Muppets?"], ["Jim Henson created the Muppets in 1955."])
    outputs = runner.run(inputs)
    start = outputs["start_logits"][0]
    end = outputs["end_logits"][0]
    # Best span with start <= end, at most 15 tokens (as Transformers' QA pipeline does).
    scores = start[:, None] + end[None, :]
    allowed = torch.ones_like(scores, dtype=torch.bool).triu().tril(15)
    first, last = divmod(int(scores.masked_fill(~allowed, -1e9).argmax()), scores.shape[1])
    ids = inputs[text.names["token_ids"]][0, first : last + 1]
    return {"answer_tokens": [text.token(int(t)) for t in ids]}


def multiple_choice(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    prompt = "To dry wet clothes you"
    choices = ["hang them in the sun", "put them in the freezer"]
    # Inputs are (batch, choices, sequence): every choice paired with the prompt.
    pairs = text.encode([prompt] * len(choices), choices)
    inputs = {name: value.unsqueeze(0) for name, value in pairs.items()}
    scores = runner.run(inputs)["logits"][0].softmax(-1)  # (choices,)
    return {"choice": choices[int(scores.argmax())], "scores": scores.tolist()}


def causal_lm(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    inputs = text.encode(["Once upon a time"])
    ids = inputs[text.names["token_ids"]]
    # Greedy decoding without a cache: the export is one forward pass over the whole sequence.
    for _ in range(min(5, text.manifest["max_length"] - ids.shape[1])):
        step = {**inputs, text.names["token_ids"]: ids}
        if "attention_mask" in text.names:
            step[text.names["attention_mask"]] = torch.ones_like(ids)
        next_id = runner.run(step)["logits"][0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return {"generated_ids": ids[0].tolist()}


def text2text(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    inputs = text.encode(["translate English to German: The house is wonderful."])
    decoder = torch.tensor([[text.manifest["decoder_start_token_id"]]])
    for _ in range(5):  # greedy: the decoder sees everything generated so far
        step = {**inputs, **text.named({"decoder_token_ids": decoder})}
        next_id = runner.run(step)["logits"][0, -1].argmax()
        decoder = torch.cat([decoder, next_id.view(1, 1)], dim=1)
    return {"generated_ids": decoder[0, 1:].tolist()}


def image_classification(runner: tsrunner.Runner, text: TextInputs) -> dict[str, Any]:
    image = text.manifest["image"]
    height, width, channels = image["height"], image["width"], image["channels"]
    # A synthetic gradient image in [0, 1]; a real one comes from PIL / torchvision.
    pixels = (
        torch.linspace(0, 1, height * width).view(1, 1, height, width).repeat(1, channels, 1, 1)
    )
    if image.get("do_normalize", True) and image.get("mean"):
        mean = torch.tensor(image["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(image["std"]).view(1, -1, 1, 1)
        pixels = (pixels - mean) / std
    logits = runner.run(text.named({"pixel_values": pixels}))["logits"][0]
    return {"label": text.manifest["labels"][int(logits.argmax())]}


TASKS = {
    "feature-extraction": feature_extraction,
    "fill-mask": fill_mask,
    "text-classification": text_classification,
    "token-classification": token_classification,
    "question-answering": question_answering,
    "multiple-choice": multiple_choice,
    "causal-lm": causal_lm,
    "text2text": text2text,
    "image-classification": image_classification,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="local Transformers model directory")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("-o", "--output", type=Path, default=Path("model.pt"))
    parser.add_argument("--max-length", type=int, default=32, help="text tasks (default 32)")
    args = parser.parse_args(argv)

    images = args.task == "image-classification"
    report = tsrunner.export(
        args.model, args.output, task=args.task, max_length=None if images else args.max_length
    )
    print(report.summary())
    runner = tsrunner.Runner(args.output)
    answer = TASKS[args.task](runner, TextInputs(args.output, report.manifest))
    print(f"{args.task}: {answer}")
    return answer


if __name__ == "__main__":
    main()
