"""docs/scale-out.md's examples that need no cluster (tsrun --input, Kubernetes and KServe
manifests, Triton) and the scale-out extras. The Ray and Spark examples run in
test_scale_out.py, on its local clusters."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import scale_out_cluster as cluster
from serve_process import Server

ROOT = Path(__file__).resolve().parents[2]


def test_every_example_is_tested():
    tested = {"tsrun-input", "kubernetes", "kserve", "triton", "ray", "ray-helper", "spark"}
    assert set(cluster.doc_example_names()) == tested


def test_extras_are_what_make_test_installs():
    """tsrunner[ray] and tsrunner[spark], as the installed package declares them, are what
    `make test` installs from requirements/scale-out.txt."""
    extras = set()
    for requirement in importlib.metadata.requires("tsrunner"):
        name, _, marker = requirement.partition(";")
        if re.search(r'extra == "(ray|spark)"', marker):
            extras.add(name.strip().replace(" ", ""))
    installed = {
        line.strip().replace(" ", "")
        for line in (ROOT / "requirements/scale-out.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert extras == installed
    for requirement in installed - {"pyarrow>=15"}:
        assert "==" in requirement, f"{requirement} is not pinned"


def test_tsrun_input_example(tmp_path, tiny_bert_pt, tsrun):
    (tmp_path / "model.pt").symlink_to(tiny_bert_pt)
    rows = cluster.corpus_table(50).to_pylist()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = {**os.environ, "PATH": f"{Path(tsrun).parent}:{os.environ['PATH']}"}
    command = cluster.doc_example("tsrun-input")
    subprocess.run(["bash", "-euc", command], cwd=tmp_path, env=env, check=True)
    answers = [json.loads(line) for line in (tmp_path / "embedded.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == [row["id"] for row in rows]
    assert all(len(a["embedding"]) == 32 for a in answers)


def _containers(document: dict) -> list[dict]:
    spec = document["spec"]
    return (
        spec["template"]["spec"]["containers"]
        if "template" in spec
        else spec["predictor"]["containers"]
    )


def _serve_command(container: dict) -> tuple[str, list[str], str, int]:
    """(model path, other arguments, host, port) of a container running tsrun serve."""
    command = container["command"]
    assert command[:2] == ["tsrun", "serve"], command
    model, rest = command[2], command[3:]
    host = rest[rest.index("--host") + 1]
    port = int(rest[rest.index("--port") + 1])
    others = [a for i, a in enumerate(rest) if a not in ("--host", "--port")
              and rest[i - 1] not in ("--host", "--port")]  # fmt: skip
    return model, others, host, port


@pytest.fixture(scope="module")
def server(tsrun, tiny_bert_pt):
    """tsrun serve started with the manifests' arguments (on loopback and a free port here)."""
    deployment = next(yaml.safe_load_all(cluster.doc_example("kubernetes")))
    _, others, _, _ = _serve_command(_containers(deployment)[0])
    process = Server(tsrun, [tiny_bert_pt], "--host", "127.0.0.1", *others)
    yield process
    process.stop()


def test_kubernetes_manifest(server):
    documents = list(yaml.safe_load_all(cluster.doc_example("kubernetes")))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"Deployment", "Service"}
    deployment, service = kinds["Deployment"], kinds["Service"]
    assert deployment["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert service["spec"]["selector"] == labels
    (container,) = _containers(deployment)
    model, _, host, port = _serve_command(container)
    assert host == "0.0.0.0", "inside a pod tsrun serve must listen beyond loopback"
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert any(model.startswith(path + "/") for path in mounts.values()), model
    for probe in ("readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert http["port"] == container_port["name"]
        status, _, _ = server.request("GET", http["path"])
        assert status == 200, f"{probe} {http['path']} answered {status}"


def test_kserve_manifest(server):
    (service,) = yaml.safe_load_all(cluster.doc_example("kserve"))
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    (container,) = _containers(service)
    assert container["name"] == "kserve-container"  # the name KServe routes to
    model, _, host, port = _serve_command(container)
    assert model.startswith("/mnt/models/")  # where KServe's storage initializer puts models
    assert host == "0.0.0.0" and container["ports"][0]["containerPort"] == port
    path = container["readinessProbe"]["httpGet"]["path"]
    status, _, body = server.request("GET", path)
    assert status == 200, body
    # The model is named after its file (tiny_bert.pt here, model.pt in the pod).
    status, _, body = server.request("GET", "/v2/models/tiny_bert/ready")
    assert status == 200, body


@pytest.mark.cluster_full  # an export: seconds that test_triton.py already spends in `make test`
def test_triton_example(tmp_path, tiny_bert_dir):
    (tmp_path / "model_dir").symlink_to(tiny_bert_dir)
    command = cluster.doc_example("triton")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-euc", command], cwd=tmp_path, env=env, check=True,
                   capture_output=True)  # fmt: skip
    configs = list((tmp_path / "triton-repo").glob("*/config.pbtxt"))
    assert len(configs) == 1
    assert re.search(r'platform: "pytorch_libtorch"|backend: "pytorch"', configs[0].read_text())
    assert list(configs[0].parent.glob("1/model.pt"))
