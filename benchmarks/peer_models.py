"""The peers' models, built once into a work directory and loaded from there.

Shared by benchmarks/peers.py (speed, peer_runners.py) and benchmarks/int8_neighbours.py
(accuracy), so both measure the same artifacts:
  - ONNX: torch.onnx export of the model with eager attention (Transformers 5's default sdpa
    leaves ONNX Runtime's transformer optimizer nothing to fuse: 0 Attention nodes), then ORT's
    optimizer (fused Attention / SkipLayerNormalization / BiasGelu), and ORT's dynamic int8
    (quantize_dynamic, per-channel weights);
  - OpenVINO: `ov.convert_model` of the PyTorch model saved as float32 IR, and NNCF's int8
    (`nncf.quantize`, transformer preset, tsrunner's 128 calibration sentences);
  - CTranslate2: its Transformers converter, float32 or int8 weights.
Each `build_*` returns the path of what it wrote and does nothing when the file exists.
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
from pathlib import Path

import torch

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# ONNX Runtime's fused operators worth counting: what its transformer optimizer did.
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "QAttention",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
)


class Positional(torch.nn.Module):
    """The encoder with three positional inputs and one output, for the graph exporters."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=False,
        )[0]


def load_model(model_dir: str | Path, attention: str = "sdpa"):
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_dir, attn_implementation=attention).eval()


def _atomic(path: Path) -> Path:
    """A temporary name beside `path`: builders write there and rename, so an interrupted
    build leaves no file that a later run would take for finished."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


# --- ONNX Runtime ---


def build_onnx(model_dir: str | Path, work: Path, attention: str = "eager") -> Path:
    path = work / f"model-{attention}.onnx"
    if path.exists():
        return path
    example = (torch.ones(1, 16, dtype=torch.long),) * 2 + (torch.zeros(1, 16, dtype=torch.long),)
    axes = {0: "batch", 1: "sequence"}
    temporary = _atomic(path)
    torch.onnx.export(
        Positional(load_model(model_dir, attention)),
        example,
        str(temporary),
        input_names=list(INPUT_NAMES),
        output_names=["last_hidden_state"],
        dynamic_axes={name: axes for name in [*INPUT_NAMES, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    temporary.rename(path)
    return path


def build_onnx_optimized(model_dir: str | Path, work: Path) -> Path:
    """The eager-attention export through ORT's transformer optimizer (as Optimum does)."""
    import transformers
    from onnxruntime.transformers import optimizer

    path = work / "model-eager-optimized.onnx"
    if path.exists():
        return path
    config = transformers.AutoConfig.from_pretrained(model_dir)
    optimized = optimizer.optimize_model(
        str(build_onnx(model_dir, work, "eager")),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    temporary = _atomic(path)
    optimized.save_model_to_file(str(temporary))
    temporary.rename(path)
    return path


def build_onnx_int8(model_dir: str | Path, work: Path) -> Path:
    """ORT's dynamic int8 (per-channel int8 weights, per-tensor u8 activations at run time) of
    the optimized export: its fused Attention becomes QAttention."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = work / "model-eager-optimized-int8.onnx"
    if path.exists():
        return path
    temporary = _atomic(path)
    quantize_dynamic(
        str(build_onnx_optimized(model_dir, work)),
        str(temporary),
        per_channel=True,
        weight_type=QuantType.QInt8,
        # The fused contrib operators defeat its shape inference: their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    temporary.rename(path)
    return path


def onnx_op_counts(path: Path) -> dict[str, int]:
    """How many of FUSED_OPS the graph at `path` holds (the optimizer's work, or its absence)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts = collections.Counter(node.op_type for node in graph.node)
    return {op: counts[op] for op in FUSED_OPS if counts[op]}


# --- OpenVINO ---


def calibration_batches(model_dir: str | Path) -> list[dict[str, torch.Tensor]]:
    """tsrunner's int8 calibration sentences (not the gate's), batches of 32 up to 128 tokens."""
    from tsrunner import quantize

    tokenizer = Path(model_dir, "tokenizer.json").read_text()
    specs = [type("Spec", (), {"name": n}) for n in quantize.TEXT_INPUTS]
    sentences = quantize.calibration_sentences()
    return quantize.text_batches(specs, tokenizer, 0, 128, None, sentences)


def _save_openvino(model, path: Path) -> Path:
    import openvino as ov

    temporary = _atomic(path)
    # save_model halves float32 weights to float16 unless told not to.
    ov.save_model(model, str(temporary), compress_to_fp16=False)
    temporary.with_suffix(".bin").rename(path.with_suffix(".bin"))  # the weights first
    temporary.rename(path)
    return path


def build_openvino(model_dir: str | Path, work: Path) -> Path:
    """The PyTorch model converted to OpenVINO IR (float32 weights; the precision it runs in is
    chosen at compile time by INFERENCE_PRECISION_HINT)."""
    import openvino as ov

    path = work / "openvino-fp32.xml"
    if path.exists():
        return path
    example = tuple(calibration_batches(model_dir)[0][name] for name in INPUT_NAMES)
    converted = ov.convert_model(Positional(load_model(model_dir)), example_input=example)
    return _save_openvino(converted, path)


def build_openvino_int8(model_dir: str | Path, work: Path) -> Path:
    """NNCF's post-training int8 of the float32 IR (transformer preset: per-channel weights,
    the accuracy-sensitive ops left in float), calibrated on tsrunner's calibration text."""
    import nncf
    import openvino as ov

    path = work / "openvino-int8.xml"
    if path.exists():
        return path
    model = ov.Core().read_model(str(build_openvino(model_dir, work)))
    dataset = nncf.Dataset(
        calibration_batches(model_dir), lambda b: tuple(b[n].numpy() for n in INPUT_NAMES)
    )
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER)
    return _save_openvino(quantized, path)


def compile_openvino(path: Path, threads: int, precision: str | None):
    """The IR compiled for the CPU: `threads` inference threads, the latency hint (one stream),
    `precision` ("f32", "bf16"; None: OpenVINO's default, bf16 on CPUs with AVX512-BF16) for
    what is not int8. Returns (compiled model, what it runs: hint and runtime precisions)."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    streams = compiled.get_property("NUM_STREAMS")
    ran = compiled.get_property("INFERENCE_NUM_THREADS")
    label = (
        f"openvino {ov.__version__.split('-')[0]}: INFERENCE_PRECISION_HINT={hint}, {ran} threads, "
        f"{streams} stream(s); {runtime_precisions(compiled)}"
    )
    return compiled, label


# The execution graph's layer types that do the matrix work (Subgraph: a fused snippet, where
# OpenVINO puts attention).
MATRIX_LAYERS = ("FullyConnected", "MatMul", "ScaledAttn", "MHA", "Subgraph")


def runtime_precisions(compiled) -> str:
    """The execution graph's runtime precision per kind of matrix layer, e.g.
    "FullyConnected 36 x u8, ScaledDotProductAttention 6 x bf16"."""
    counts: collections.Counter = collections.Counter()
    with contextlib.suppress(Exception):  # an execution graph without the rt_info: no details
        for op in compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            kind = str(info["layerType"].astype(str))
            if kind in MATRIX_LAYERS:
                counts[(kind, str(info["runtimePrecision"].astype(str)))] += 1
    if not counts:
        return "runtime precisions not reported"
    return "runtime " + ", ".join(f"{kind} {n} x {p}" for (kind, p), n in sorted(counts.items()))


# --- CTranslate2 ---


def build_ctranslate2(model_dir: str | Path, work: Path, quantization: str) -> Path:
    """CTranslate2's conversion of the Transformers model, weights in `quantization`
    ("float32" or "int8": per-row weight scales)."""
    import ctranslate2

    folder = work / f"ct2-{quantization}"
    if folder.exists():
        return folder
    temporary = Path(tempfile.mkdtemp(prefix=f".ct2-{quantization}-", dir=work))
    converter = ctranslate2.converters.TransformersConverter(str(model_dir))
    converter.convert(str(temporary), quantization=quantization, force=True)
    temporary.rename(folder)
    return folder


@contextlib.contextmanager
def captured_stderr():
    """What native code writes to file descriptor 2 inside the block, as a list of lines."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().splitlines()


def load_ctranslate2(folder: Path, compute_type: str, threads: int):
    """CTranslate2's Encoder on the CPU; CT2_FORCE_CPU_ISA=AVX512 unless set (on AMD it takes
    its AVX2 path otherwise). Returns (encoder, the ISA and GEMM backends it reports)."""
    import logging

    os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX512")
    import ctranslate2

    ctranslate2.set_log_level(logging.INFO)  # it names its ISA and backends when it loads
    with captured_stderr() as log:
        encoder = ctranslate2.Encoder(
            str(folder), device="cpu", compute_type=compute_type, intra_threads=threads
        )
    ctranslate2.set_log_level(logging.WARNING)
    wanted = ("Selected ISA", "Use Intel MKL", "SGEMM backend", "GEMM_S8 backend")
    facts = [line.split("] ")[-1].lstrip(" -") for line in log if any(w in line for w in wanted)]
    # It says so once per process: a second Encoder gets the first one's words.
    _CT2_FACTS[:] = facts or _CT2_FACTS
    label = f"ctranslate2 {ctranslate2.__version__} {compute_type}: " + (
        "; ".join(_CT2_FACTS) or "ISA not reported"
    )
    return encoder, label


_CT2_FACTS: list[str] = []
