"""Issue 16: AOTInductor .pt2 packages beside TorchScript, behind the same manifest, digest,
Runner and tsrun. One tiny model is compiled once per session (tiny_bert_pt2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile

import jsonschema
import pytest
import torch

import tsrunner
from archive_tools import entry_name, flip_byte
from serve_process import Server, environment_without_api_key
from tsrunner import _core
from tsrunner import manifest as manifest_module
from tsrunner.integrity import content_digest, seal
from tsrunner.sample_text import sample

IDS = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 102]])
MASK = (IDS != 0).long()


def _inputs() -> dict[str, torch.Tensor]:
    return {"input_ids": IDS, "attention_mask": MASK, "token_type_ids": torch.zeros_like(IDS)}


def _rewrite_manifest(source, destination, edit) -> None:
    """A copy of the package with its manifest changed by `edit` and sealed again (what a
    tampering exporter could do: the digest then passes, the requirements must not)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w") as new:
        digest = entry_name(source, "extra/tsrunner/digest.json")
        manifest_name = entry_name(source, "extra/tsrunner/manifest.json")
        for info in old.infolist():
            if info.filename == digest:
                continue
            data = old.read(info)
            if info.filename == manifest_name:
                manifest = json.loads(data)
                edit(manifest)
                data = json.dumps(manifest).encode()
            new.writestr(info, data)
    seal(destination)


def test_export_writes_a_sealed_pt2_with_the_manifest(tiny_bert_pt2_export):
    path, report = tiny_bert_pt2_export
    manifest = tsrunner.read_manifest(path)
    jsonschema.validate(manifest, manifest_module.schema())
    assert manifest == report.manifest
    assert manifest["backend"] == "aoti"
    assert manifest["shape_contract"]["kind"] == "dynamic"
    assert manifest["validation"]["passed"]
    aoti = manifest["aoti"]
    assert aoti["torch"] == torch.__version__.split("+")[0]
    assert aoti["isa"] == "native" and aoti["cpu_isa"]
    assert "avx2" in aoti["cpu_flags"]
    assert tsrunner.read_archive_file(path, "tsrunner/tokenizer.json")
    assert tsrunner.verify_archive(path) == content_digest(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert any(name.endswith(".wrapper.so") for name in names)
    assert all(name.split("/", 1)[0] == names[0].split("/", 1)[0] for name in names)


def test_plain_pytorch_loads_the_package(tiny_bert_pt2):
    compiled = torch._inductor.aoti_load_package(str(tiny_bert_pt2))
    hidden, pooled = compiled(*_inputs().values())
    assert hidden.shape == (2, 6, 32) and pooled.shape == (2, 32)


def test_python_and_cpp_agree_and_both_match_eager(tiny_bert_pt2, tiny_bert_dir):
    from transformers import AutoModel

    torch.set_num_threads(1)
    runner = tsrunner.Runner(tiny_bert_pt2, threads=1)
    assert runner.kernel_path == "aoti"
    compiled = torch._inductor.aoti_load_package(str(tiny_bert_pt2))
    eager = AutoModel.from_pretrained(tiny_bert_dir).eval()
    atol = tsrunner.read_manifest(tiny_bert_pt2)["validation"]["atol"]
    for batch, length in ((1, 1), (2, 6), (3, 17), (1, 64)):
        ids = torch.randint(1, 1000, (batch, length))
        inputs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
        cpp = runner.run(inputs)
        python = compiled(*inputs.values())
        with torch.inference_mode():
            reference = eager(**inputs, return_dict=True)
        for index, name in enumerate(("last_hidden_state", "pooler_output")):
            assert torch.equal(cpp[name], python[index]), (name, batch, length)
            assert (cpp[name] - reference[name]).abs().max().item() <= atol, (name, batch, length)


def test_pt_and_pt2_agree_on_real_text(tiny_bert_pt2, tiny_bert_pt):
    texts = sample(48)
    pt2 = tsrunner.Runner(tiny_bert_pt2, threads=2).predict(texts, batch_size=16)
    pt = tsrunner.Runner(tiny_bert_pt, threads=2).predict(texts, batch_size=16)
    for a, b in zip(pt2, pt, strict=True):
        va, vb = torch.tensor(a["embedding"]), torch.tensor(b["embedding"])
        assert torch.nn.functional.cosine_similarity(va, vb, dim=0).item() >= 0.99999


def test_concurrent_runs_give_the_serial_outputs(tiny_bert_pt2):
    # Serve's workers and batch threads share one Runner: the engine holds several model
    # instances, so runs from many threads execute at once; each must get its own answer.
    runner = tsrunner.Runner(tiny_bert_pt2, threads=1)
    generator = torch.Generator().manual_seed(0)
    cases = []
    for batch, length in ((1, 3), (2, 9), (4, 17), (3, 40), (1, 64), (5, 6)):
        ids = torch.randint(1, 1000, (batch, length), generator=generator)
        mask = torch.ones_like(ids)
        mask[0, length // 2 :] = 0
        cases.append({"input_ids": ids, "attention_mask": mask})
    serial = [runner.run(inputs) for inputs in cases]
    results: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    start = threading.Barrier(len(cases))

    def work(index: int) -> None:
        start.wait()
        for round_ in range(5):
            results[(index, round_)] = runner.run(cases[(index + round_) % len(cases)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 * len(cases)
    for (index, round_), got in results.items():
        want = serial[(index + round_) % len(cases)]
        for name, tensor in want.items():
            assert torch.equal(got[name], tensor), (index, round_, name)


def test_a_short_run_does_not_wait_for_a_long_one(tiny_bert_pt2):
    # With one model instance, a run arriving while another is in flight waits for it to end;
    # with an instance per caller it starts at once. The long run does ~30000x the short one's
    # work, so a short run that waited takes most of the long one's time, one that did not a
    # sliver of it, whatever the machine's load.
    runner = tsrunner.Runner(tiny_bert_pt2, threads=1)
    long_ids = torch.randint(1, 1000, (8192, 16))
    short_ids = torch.randint(1, 1000, (1, 4))
    runner.run({"input_ids": short_ids})
    started = threading.Event()
    long_seconds = []

    def long_run() -> None:
        began = time.perf_counter()
        started.set()
        runner.run({"input_ids": long_ids})
        long_seconds.append(time.perf_counter() - began)

    worker = threading.Thread(target=long_run)
    worker.start()
    started.wait()
    time.sleep(0.05)  # the long run is inside the model by now
    began = time.perf_counter()
    runner.run({"input_ids": short_ids})
    short_seconds = time.perf_counter() - began
    worker.join()
    assert short_seconds < long_seconds[0] / 4, (short_seconds, long_seconds[0])


def test_runner_checks_inputs_for_pt2_as_for_pt(tiny_bert_pt2):
    runner = tsrunner.Runner(tiny_bert_pt2, threads=1)
    too_long = torch.ones((1, 65), dtype=torch.long)
    with pytest.raises(tsrunner.InvalidInput, match="65"):
        runner.run({"input_ids": too_long})
    out = runner.run({"input_ids": IDS[:1, :4]})  # defaults filled by the runner
    assert out["last_hidden_state"].shape == (1, 4, 32)


def test_a_tampered_package_is_refused_before_loading(tiny_bert_pt2, tmp_path):
    with zipfile.ZipFile(tiny_bert_pt2) as archive:
        library = next(n for n in archive.namelist() if n.endswith(".wrapper.so"))
    record = library.split("/", 1)[1]
    damaged = tmp_path / "damaged.pt2"
    flip_byte(tiny_bert_pt2, damaged, record, index=4096)
    with pytest.raises(tsrunner.LoadError, match="modified after export"):
        tsrunner.Runner(damaged)


def _newer_torch(manifest):
    manifest["aoti"]["torch"] = "2.12.0"


def _future_cpu(manifest):
    manifest["aoti"]["cpu_flags"].append("avx1024_imaginary")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_newer_torch, ["LibTorch 2.12.0", "re-export"]),
        (_future_cpu, ["avx1024_imaginary", "--isa avx2"]),
    ],
    ids=["another-libtorch", "missing-isa"],
)
def test_what_the_package_needs_is_checked_in_one_line(tiny_bert_pt2, tmp_path, edit, expected):
    other = tmp_path / "other.pt2"
    _rewrite_manifest(tiny_bert_pt2, other, edit)
    with pytest.raises(tsrunner.LoadError) as error:
        tsrunner.Runner(other)
    message = str(error.value)
    assert all(part in message for part in expected) and "\n" not in message, message


def test_a_manifest_that_misnames_the_format_is_refused(tiny_bert_pt2, tmp_path):
    other = tmp_path / "claims_jit.pt2"
    _rewrite_manifest(tiny_bert_pt2, other, lambda m: m.update(backend="jit"))
    with pytest.raises(tsrunner.LoadError, match="AOTInductor package but its manifest says"):
        tsrunner.Runner(other)


def test_a_file_swapped_after_the_check_is_not_what_runs(tiny_bert_pt2, tiny_bert_pt, tmp_path):
    path = tmp_path / "model.pt2"
    shutil.copyfile(tiny_bert_pt2, path)
    other = tmp_path / "other.pt2"
    _rewrite_manifest(tiny_bert_pt2, other, lambda m: m.update(max_length=32))
    swapped = []

    def swap(loading: str) -> None:
        os.replace(other, loading)
        swapped.append(loading)

    _core._testing.set_after_verify_hook(swap)
    try:
        runner = tsrunner.Runner(path, threads=1)
    finally:
        _core._testing.set_after_verify_hook(None)
    assert swapped == [str(path)]
    assert tsrunner.read_manifest(path)["max_length"] == 32  # the swapped file on disk
    assert runner.manifest["max_length"] == 64  # the verified one was loaded
    expected = tsrunner.Runner(tiny_bert_pt2, threads=1).run(_inputs())
    got = runner.run(_inputs())
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_no_extracted_files_are_left_behind(tiny_bert_pt2, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    code = "import tsrunner, sys; tsrunner.Runner(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tiny_bert_pt2)], check=True, env=env)
    assert not list(tmp_path.iterdir())


def test_tsrun_runs_the_package(tsrun, tiny_bert_pt2, tiny_bert_pt):
    info = subprocess.run([tsrun, "info", tiny_bert_pt2], capture_output=True, text=True)
    assert info.returncode == 0 and "AOTInductor" in info.stdout
    outputs = {}
    for model in (tiny_bert_pt2, tiny_bert_pt):
        result = subprocess.run(
            [tsrun, model, "--text", "hello world", "--threads", "1"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        outputs[model] = torch.tensor(json.loads(result.stdout)["embedding"])
    cosine = torch.nn.functional.cosine_similarity(*outputs.values(), dim=0).item()
    assert cosine >= 0.99999
    bench = subprocess.run(
        [tsrun, "bench", tiny_bert_pt2, "--batch", "2", "--seq", "8", "--iterations", "3"],
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 0, bench.stderr


def test_batch_mode_and_serve_run_the_package(tsrun, tiny_bert_pt2, tmp_path):
    """tsrun's batch mode (--input) and `tsrun serve` answer from a .pt2 what Runner.predict
    does: the issue asks for the same batch mode and server, not only --text."""
    texts = sample(6, offset=3)
    want = [
        torch.tensor(p["embedding"])
        for p in tsrunner.Runner(tiny_bert_pt2, threads=1).predict(texts, batch_size=1)
    ]
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    result = subprocess.run(
        [tsrun, tiny_bert_pt2, "--input", source, "--output", output, "--threads", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    got = [torch.tensor(json.loads(line)["embedding"]) for line in output.read_text().splitlines()]
    with Server(tsrun, [tiny_bert_pt2], env=environment_without_api_key()) as server:
        status, served = server.post(
            "/embed", {"inputs": texts, "normalize": False, "truncate": True}
        )
    assert status == 200, served
    for batch, one, answer in zip(got, want, served, strict=True):
        assert torch.allclose(batch, one, atol=1e-5)
        assert torch.allclose(torch.tensor(answer), one, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"output": "m.pt", "format": "aoti"}, "a .pt2 file"),
        ({"output": "m.pt2", "format": "torchscript"}, "use --format aoti"),
        ({"output": "m.pt2", "quantize": "int8"}, "--quantize int8"),
        ({"output": "m.pt2", "buckets": [8, 16]}, "--buckets"),
        ({"output": "m.pt", "isa": "avx2"}, "isa applies to"),
        ({"output": "m.pt2", "isa": "sse2"}, "isa must be one of"),
    ],
)
def test_bad_aoti_options_are_refused_before_loading(tmp_path, arguments, message):
    output = tmp_path / arguments.pop("output")
    with pytest.raises(ValueError, match=message):
        tsrunner.export(tmp_path / "missing-model", output, **arguments)
    assert not output.exists()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a CPU whose default is 2+ threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_the_runners_thread_count_applies_to_the_compiled_kernels(tiny_bert_pt2, threads):
    # OpenMP's thread count is per calling thread and defaults to every core. A run from a new
    # thread must use the runner's count: that thread plus threads - 1 OpenMP workers, which
    # live as long as it does (counted while it waits).
    code = (
        "import os, sys, threading, torch, tsrunner\n"
        "runner = tsrunner.Runner(sys.argv[1], threads=int(sys.argv[2]))\n"
        "ids = torch.randint(1, 1000, (16, 64))\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "ran, release = threading.Event(), threading.Event()\n"
        "def work():\n"
        "    runner.run({'input_ids': ids}); ran.set(); release.wait()\n"
        "worker = threading.Thread(target=work); worker.start(); ran.wait()\n"
        "during = len(os.listdir('/proc/self/task'))\n"
        "release.set(); worker.join()\n"
        "print(during - before)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_bert_pt2), str(threads)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == threads


def test_triton_is_refused_for_a_pt2(tiny_bert_pt2, tmp_path):
    from tsrunner.triton import write_model_repository

    with pytest.raises(ValueError, match="serves TorchScript"):
        write_model_repository(tiny_bert_pt2, tmp_path / "repo")
    cli = shutil.which("tsrunner", path=os.path.dirname(sys.executable))
    result = subprocess.run(
        [cli, "export", "missing", "-o", str(tmp_path / "m.pt2"), "--triton-repo", "r"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--triton-repo needs a TorchScript" in result.stderr
    assert "Traceback" not in result.stderr
