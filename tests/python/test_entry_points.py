"""One model, one text, every entry point: the same float32 embedding, bit for bit.

Runner.predict, `tsrun --text`, `tsrun --input`, and tsrun serve's /embed, /v1/embeddings and
/v2/models/{name}/infer all go through libtsrunner's one request path (docs/architecture.md).
At the same engine settings (engine=default: the graph as exported, one intra-op thread) a lone
text runs as a batch of one everywhere, so every entry point must give the identical floats.
"""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
import pytest

import tsrunner
from serve_process import Server, environment_without_api_key

TEXT = "Every entry point gives the same answer for one sentence."
SETTINGS = ["--kernel-path", "default", "--threads", "1"]


def _floats(values) -> np.ndarray:
    # The JSON answers are the shortest decimals of float32 values: they parse back exactly.
    return np.asarray(values, dtype=np.float32)


@pytest.fixture(scope="module")
def reference(minilm_pt) -> np.ndarray:
    runner = tsrunner.Runner(minilm_pt, threads=1, kernel_path="default")
    return _floats(runner.predict(TEXT)[0]["embedding"])


def _tsrun_json_lines(tsrun, *args, stdin=None) -> list[dict]:
    result = subprocess.run(
        [tsrun, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_tsrun_text_and_input_give_runner_predicts_floats(tsrun, minilm_pt, reference):
    [by_text] = _tsrun_json_lines(tsrun, minilm_pt, "--text", TEXT, *SETTINGS)
    assert np.array_equal(_floats(by_text["embedding"]), reference)
    line = json.dumps({"id": 7, "text": TEXT}) + "\n"
    [by_input] = _tsrun_json_lines(tsrun, minilm_pt, "--input", "-", *SETTINGS, stdin=line)
    assert by_input["id"] == 7
    assert np.array_equal(_floats(by_input["embedding"]), reference)


def test_every_server_route_gives_runner_predicts_floats(tsrun, minilm_pt, reference):
    tokenizer = tsrunner.Tokenizer.from_file(minilm_pt)
    with Server(tsrun, [minilm_pt], *SETTINGS, env=environment_without_api_key()) as server:
        status, tei = server.post("/embed", {"inputs": TEXT})
        assert status == 200
        assert np.array_equal(_floats(tei[0]), reference)

        status, openai = server.post("/v1/embeddings", {"model": "minilm", "input": TEXT})
        assert status == 200
        assert np.array_equal(_floats(openai["data"][0]["embedding"]), reference)
        status, openai64 = server.post(
            "/v1/embeddings", {"model": "minilm", "input": TEXT, "encoding_format": "base64"}
        )
        assert status == 200
        decoded = np.frombuffer(base64.b64decode(openai64["data"][0]["embedding"]), np.float32)
        assert np.array_equal(decoded, reference)

        # The Open Inference Protocol takes the tokens; the export's own sentence_embedding
        # output is the same vector.
        ids = tokenizer.encode(TEXT).ids
        body = {
            "inputs": [
                {"name": "input_ids", "shape": [1, len(ids)], "datatype": "INT64", "data": ids},
                {
                    "name": "attention_mask",
                    "shape": [1, len(ids)],
                    "datatype": "INT64",
                    "data": [1] * len(ids),
                },
            ],
            "outputs": [{"name": "sentence_embedding"}],
        }
        status, v2 = server.post("/v2/models/minilm/infer", body)
        assert status == 200, v2
        [output] = v2["outputs"]
        assert output["shape"] == [1, reference.size]
        assert np.array_equal(_floats(output["data"]), reference)
