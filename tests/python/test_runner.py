"""tsrunner.Runner: the C++ runner through pybind11, its contract checks and its errors."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

import tsrunner


@pytest.fixture(scope="module")
def runner(tiny_bert_pt):
    return tsrunner.Runner(tiny_bert_pt, threads=2)


def _ids(batch=2, sequence=6):
    generator = torch.Generator().manual_seed(batch * 100 + sequence)
    return torch.randint(1000, 30000, (batch, sequence), generator=generator)


def test_run_returns_named_outputs_in_manifest_order(runner):
    ids = _ids()
    outputs = runner.run(
        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": 0 * ids}
    )
    assert list(outputs) == ["last_hidden_state", "pooler_output"]
    assert outputs["last_hidden_state"].shape == (2, 6, 32)
    assert outputs["last_hidden_state"].dtype == torch.float32
    assert outputs["pooler_output"].shape == (2, 32)
    assert runner.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert runner.output_names == ["last_hidden_state", "pooler_output"]


def test_manifest_is_the_archive_manifest(runner, tiny_bert_pt):
    assert runner.manifest == tsrunner.read_manifest(tiny_bert_pt)
    assert runner.manifest["task"] == "feature-extraction"


def test_defaulted_inputs_are_filled_from_the_manifest(runner):
    ids = _ids()
    explicit = runner.run(
        {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
    )
    implicit = runner.run({"input_ids": ids})
    for name in explicit:
        assert torch.equal(explicit[name], implicit[name])


def test_matches_torch_jit_load_bit_for_bit(tiny_bert_pt):
    ids = _ids(3, 9)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    types = torch.zeros_like(ids)
    types[2, 4:] = 1
    module = torch.jit.load(str(tiny_bert_pt))
    with torch.inference_mode():
        expected = module(ids, mask, types)
    runner = tsrunner.Runner(tiny_bert_pt, threads=2, kernel_path="default")  # the same graph
    got = runner.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    assert torch.equal(got["last_hidden_state"], expected[0])
    assert torch.equal(got["pooler_output"], expected[1])


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (lambda ids: {"input_ids": ids, "input_idz": ids}, 'unknown input "input_idz"'),
        (lambda ids: {"attention_mask": ids}, 'missing input "input_ids"'),
        (lambda ids: {"input_ids": ids.int()}, 'input "input_ids" has dtype int32, expected int64'),
        (lambda ids: {"input_ids": ids[0]}, 'input "input_ids" has 1 dimensions, expected 2'),
        (
            lambda ids: {"input_ids": ids, "attention_mask": torch.ones(2, 5, dtype=torch.long)},
            'input "attention_mask" has sequence size 5 but "input_ids" has 6',
        ),
        (lambda ids: {"input_ids": ids[:, :0]}, 'input "input_ids" has an empty sequence'),
        (
            lambda ids: {"input_ids": torch.where(ids == ids[1, 3], 30522, ids)},
            r'input "input_ids" has value 30522 at \[1\]\[3\], '
            r"outside the valid range \[0, 30522\)",
        ),
        (
            lambda ids: {"input_ids": ids, "attention_mask": 2 * torch.ones_like(ids)},
            r'input "attention_mask" has value 2 at \[0\]\[0\], outside the valid range \[0, 2\)',
        ),
        (
            lambda ids: {"input_ids": torch.ones(1, 65, dtype=torch.long)},
            "input has 65 tokens; this export was validated up to 64: re-export with "
            "--max-length 65",
        ),
        (lambda ids: {"input_ids": ids.tolist()}, 'input "input_ids" must be a torch.Tensor'),
    ],
)
def test_bad_inputs_raise_invalid_input_and_the_runner_stays_usable(runner, make_inputs, message):
    with pytest.raises(tsrunner.InvalidInput, match=message) as caught:
        runner.run(make_inputs(_ids()))
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    assert runner.run({"input_ids": _ids()})["pooler_output"].shape == (2, 32)


def test_missing_file_is_a_load_error(tmp_path):
    with pytest.raises(tsrunner.LoadError, match="model file not found") as caught:
        tsrunner.Runner(tmp_path / "absent.pt")
    assert isinstance(caught.value, RuntimeError)


def test_non_archive_is_a_load_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a model")
    with pytest.raises(tsrunner.LoadError, match="is not a TorchScript archive"):
        tsrunner.Runner(path)


def test_torchscript_without_manifest_runs_by_argument_name(tmp_path):
    # A plain module (tests/python/test_plain_trace.py has the original recipe's trace).
    path = tmp_path / "plain.pt"
    module = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(module, str(path))
    with pytest.warns(UserWarning, match="plain TorchScript module"):
        runner = tsrunner.Runner(path)
    x = torch.randn(3, 2)
    torch.testing.assert_close(runner.run({"input": x})["output_0"], module(x))
    with pytest.raises(ValueError, match=r'unknown input "x"; this model takes: input'):
        runner.run({"x": x})


def _resave_with_manifest(source, destination, edit):
    files = {"tsrunner/manifest.json": ""}
    module = torch.jit.load(str(source), _extra_files=files)
    manifest = json.loads(files["tsrunner/manifest.json"])
    edit(manifest)
    torch.jit.save(
        module, str(destination), _extra_files={"tsrunner/manifest.json": json.dumps(manifest)}
    )


def test_newer_manifest_schema_is_refused(tiny_bert_pt, tmp_path):
    path = tmp_path / "future.pt"
    _resave_with_manifest(tiny_bert_pt, path, lambda m: m.update(schema_version=99))
    with pytest.raises(tsrunner.LoadError, match=r"manifest schema 99 .* upgrade tsrunner"):
        tsrunner.Runner(path)


def test_malformed_manifest_names_the_field(tiny_bert_pt, tmp_path):
    path = tmp_path / "broken.pt"
    _resave_with_manifest(tiny_bert_pt, path, lambda m: m["inputs"][0].pop("dtype"))
    with pytest.raises(tsrunner.LoadError, match=r'inputs\[0\] has no "dtype"'):
        tsrunner.Runner(path)


def test_bad_options_are_value_errors(tiny_bert_pt):
    with pytest.raises(ValueError, match="threads must be 0"):
        tsrunner.Runner(tiny_bert_pt, threads=-1)
    with pytest.raises(ValueError, match='unknown device "tpu"'):
        tsrunner.Runner(tiny_bert_pt, device="tpu")


def test_the_gil_is_released_while_the_model_runs(minilm_pt):
    """While one thread is inside Runner.run, Python code in another thread keeps running.

    Were the GIL held, this loop could run only in the switch interval (5 ms) before the call
    begins: well under 200,000 ticks. Released, it runs for the whole call (about a second).
    """
    runner = tsrunner.Runner(minilm_pt, threads=1)
    ids = torch.randint(1000, 30000, (16, 128))
    runner.run({"input_ids": ids[:1, :8]})  # warm up: the first calls profile the graph
    done = threading.Event()

    def work():
        runner.run({"input_ids": ids})
        done.set()

    thread = threading.Thread(target=work)
    started = time.perf_counter()
    thread.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
    thread.join()
    elapsed = time.perf_counter() - started
    assert ticks > 500_000, f"{ticks} ticks in {elapsed:.2f} s"
