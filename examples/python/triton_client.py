"""Query a tsrunner export served by Triton Inference Server (PyTorch/LibTorch backend).

    tsrunner export MODEL_DIR -o minilm.pt --triton-repo repo --dynamic-batching
    tritonserver --model-repository repo          # in Triton's container, see docs/triton.md
    python examples/python/triton_client.py minilm.pt "Who was Jim Henson?" --url localhost:8000

Tokenization happens here, client-side, with the tokenizer embedded in the export; the request
carries the tensors the config names (`input_ids__0`, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tokenizers

import tsrunner
from tsrunner.triton import TRITON_DATA_TYPES, triton_name


def encode(export: Path, texts: list[str]) -> dict[str, np.ndarray]:
    """Padded int64 arrays for every input of the export, keyed by manifest name."""
    manifest = tsrunner.read_manifest(export)
    tokenizer = tokenizers.Tokenizer.from_str(
        tsrunner.read_archive_file(export, "tsrunner/tokenizer.json")
    )
    tokenizer.enable_truncation(manifest["max_length"])
    tokenizer.enable_padding(pad_id=manifest["pad_token_id"])
    encodings = tokenizer.encode_batch(texts)
    arrays = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    return {spec["name"]: arrays[spec["name"]] for spec in manifest["inputs"]}


def build_inputs(export: Path, texts: list[str]):
    """tritonclient InferInput objects, named and typed as the generated config.pbtxt says."""
    import tritonclient.http as http

    manifest = tsrunner.read_manifest(export)
    inputs = []
    for index, (name, array) in enumerate(encode(export, texts).items()):
        data_type = TRITON_DATA_TYPES[manifest["inputs"][index]["dtype"]].removeprefix("TYPE_")
        tensor = http.InferInput(triton_name(name, index), list(array.shape), data_type)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def main() -> None:
    import tritonclient.http as http

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the .pt the repository was made from")
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--url", default="localhost:8000")
    parser.add_argument("--model", help="model name in the repository (default: file stem)")
    args = parser.parse_args()

    manifest = tsrunner.read_manifest(args.export)
    client = http.InferenceServerClient(url=args.url)
    outputs = [
        http.InferRequestedOutput(triton_name(spec["name"], index))
        for index, spec in enumerate(manifest["outputs"])
    ]
    result = client.infer(
        args.model or args.export.stem, build_inputs(args.export, args.texts), outputs=outputs
    )
    for index, spec in enumerate(manifest["outputs"]):
        array = result.as_numpy(triton_name(spec["name"], index))
        print(f"{spec['name']}: shape {list(array.shape)}")


if __name__ == "__main__":
    main()
