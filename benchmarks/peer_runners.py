"""benchmarks/peers.py's runners for the peers at their best: ONNX Runtime (optimized eager-
attention export, and its dynamic int8), OpenVINO (fp32, bf16, NNCF int8), CTranslate2 (fp32,
int8 on its AVX-512 path).

Each runner is split in two: `prepare(model_dir, work)` builds its files (peer_models.py; done
once, in the parent process, so a worker's peak RSS is that of loading and running, not of
converting) and `load(model_dir, work, threads)` returns (call, label): `call(inputs)` runs one
batch of `peer_models.INPUT_NAMES` tensors and `label` says what the peer actually runs (fused
operator counts, precision hint and runtime precisions, ISA). A peer package that is missing
raises ImportError from either: peers.py reports the runner as unavailable, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import peer_models
from peer_models import INPUT_NAMES

Call = Callable[[dict], object]


@dataclass(frozen=True)
class PeerRunner:
    prepare: Callable[[Path, Path], Path]
    load: Callable[[Path, Path, int], tuple[Call, str]]


def _onnxruntime(build: Callable[[Path, Path], Path]) -> PeerRunner:
    def load(model_dir: Path, work: Path, threads: int) -> tuple[Call, str]:
        import onnxruntime

        path = build(model_dir, work)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in session.get_inputs()]
        counts = peer_models.onnx_op_counts(path)
        fused = ", ".join(f"{n} {op}" for op, n in counts.items()) or "no fused operators"
        label = f"onnxruntime {onnxruntime.__version__}, {path.name}: {fused}"

        def run(inputs):
            session.run(None, {name: inputs[name].numpy() for name in names})

        return run, label

    return PeerRunner(build, load)


def _openvino(build: Callable[[Path, Path], Path], precision: str | None) -> PeerRunner:
    def load(model_dir: Path, work: Path, threads: int) -> tuple[Call, str]:
        compiled, label = peer_models.compile_openvino(build(model_dir, work), threads, precision)
        request = compiled.create_infer_request()

        def run(inputs):
            feed = {index: inputs[name].numpy() for index, name in enumerate(INPUT_NAMES)}
            request.infer(feed, share_inputs=True, share_outputs=True)

        return run, label

    return PeerRunner(build, load)


def _ctranslate2(quantization: str, compute_type: str) -> PeerRunner:
    def build(model_dir: Path, work: Path) -> Path:
        return peer_models.build_ctranslate2(model_dir, work, quantization)

    def load(model_dir: Path, work: Path, threads: int) -> tuple[Call, str]:
        encoder, label = peer_models.load_ctranslate2(build(model_dir, work), compute_type, threads)

        def run(inputs):
            # CTranslate2 takes token lists; the rows here are unpadded (every mask is all ones).
            output = encoder.forward_batch(
                inputs["input_ids"].tolist(), token_type_ids=inputs["token_type_ids"].tolist()
            )
            np.asarray(output.last_hidden_state)

        return run, label

    return PeerRunner(build, load)


RUNNERS: dict[str, PeerRunner] = {
    "onnxruntime": _onnxruntime(peer_models.build_onnx_optimized),
    "onnxruntime-int8": _onnxruntime(peer_models.build_onnx_int8),
    "openvino-fp32": _openvino(peer_models.build_openvino, "f32"),
    "openvino-bf16": _openvino(peer_models.build_openvino, "bf16"),
    # int8 layers where NNCF put them; the rest in float32 (as int8_neighbours.py measured its
    # accuracy) or, -bf16, in bf16 (OpenVINO's own default on CPUs with AVX512-BF16).
    "openvino-int8": _openvino(peer_models.build_openvino_int8, "f32"),
    "openvino-int8-bf16": _openvino(peer_models.build_openvino_int8, "bf16"),
    "ctranslate2-fp32": _ctranslate2("float32", "float32"),
    "ctranslate2-int8": _ctranslate2("int8", "int8"),
}
