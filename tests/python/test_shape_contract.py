"""Fixed-shape exports in the C++ runner: shorter inputs are padded to the traced length (and
outputs sliced back), longer ones are refused with a message naming the limit and the fix."""

from __future__ import annotations

import pytest
import tiny_models
import torch
import transformers

import tsrunner


@pytest.fixture(scope="module")
def fixed_bert(tiny_bert_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("fixed") / "bert16.pt"
    tsrunner.export(tiny_bert_dir, path, max_length=16, shapes="fixed")
    return path


def test_shorter_inputs_are_padded_and_outputs_sliced_back(fixed_bert, tiny_bert_dir):
    runner = tsrunner.Runner(fixed_bert)
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 2182, 1012, 102]] * 2)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    got = runner.run({"input_ids": ids, "attention_mask": mask})
    assert got["last_hidden_state"].shape == (2, 9, 32)
    assert got["last_hidden_state"].is_contiguous()
    eager = transformers.BertModel.from_pretrained(tiny_bert_dir).eval()
    with torch.inference_mode():
        want = eager(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state, rtol=0, atol=1e-5)
    torch.testing.assert_close(got["pooler_output"], want.pooler_output, rtol=0, atol=1e-5)


def test_longer_inputs_are_refused_naming_the_limit_and_the_fix(fixed_bert):
    runner = tsrunner.Runner(fixed_bert)
    with pytest.raises(
        tsrunner.InvalidInput,
        match="input has 17 tokens; this export was traced for 16: re-export with --max-length 17",
    ):
        runner.run({"input_ids": torch.full((1, 17), 1000)})


def test_fixed_encoder_decoder_pads_both_lengths(tmp_path):
    directory = tiny_models.make_model("T5", "text2text", tmp_path / "t5", tokenizer_source=None)
    path = tmp_path / "t5.pt"
    report = tsrunner.export(directory, path, max_length=8, shapes="fixed")
    traced = report.manifest["shape_contract"]["traced"]
    assert traced == {"batch": 2, "sequence": 8, "decoder_sequence": 4}
    runner = tsrunner.Runner(path)
    inputs = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        "decoder_input_ids": torch.tensor([[0, 20, 21], [0, 30, 31]]),
    }
    got = runner.run(inputs)
    assert got["logits"].shape == (2, 3, 1000)
    eager = transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()
    with torch.inference_mode():
        want = eager(**inputs, use_cache=False)
    torch.testing.assert_close(got["logits"], want.logits, rtol=0, atol=1e-5)
    with pytest.raises(tsrunner.InvalidInput, match="decoder input has 5 tokens; this fixed"):
        runner.run({**inputs, "decoder_input_ids": torch.zeros((2, 5), dtype=torch.long)})
    with pytest.raises(ValueError, match="buckets are not supported for text2text exports yet"):
        tsrunner.export(directory, tmp_path / "buckets.pt", buckets=[4, 8])


@pytest.fixture(scope="module")
def bucketed_bert(tiny_bert_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("buckets") / "bert-buckets.pt"
    return tsrunner.export(tiny_bert_dir, path, buckets=[16, 4, 8])


def test_buckets_are_methods_of_one_module_validated_each(bucketed_bert):
    contract = bucketed_bert.manifest["shape_contract"]
    assert contract["kind"] == "fixed"
    assert contract["buckets"] == [4, 8, 16]
    assert contract["max_sequence"] == bucketed_bert.manifest["max_length"] == 16
    checks = bucketed_bert.manifest["validation"]["checks"]
    assert [c["sequence"] for c in checks] == [16, 8, 4]
    assert all(c["passed"] for c in checks)
    assert "Shape contract: fixed, sequence 16..16, buckets 4, 8, 16" in bucketed_bert.summary()
    module = torch.jit.load(str(bucketed_bert.output))
    ids = torch.full((1, 8), 1000)
    torch.testing.assert_close(
        module.forward_8(ids, torch.ones_like(ids), torch.zeros_like(ids))[0],
        module.forward(
            torch.nn.functional.pad(ids, (0, 8)),
            torch.nn.functional.pad(torch.ones_like(ids), (0, 8)),
            torch.zeros((1, 16), dtype=torch.long),
        )[0][:, :8],
        rtol=0,
        atol=1e-5,
    )


def test_bucketed_archive_stores_the_weights_once(bucketed_bert, fixed_bert):
    single = fixed_bert.stat().st_size
    # Three traced graphs, one copy of the ~4 MB of weights: a few percent more than one graph.
    assert bucketed_bert.size_bytes < single * 1.1


@pytest.mark.parametrize("length", [1, 3, 4, 5, 9, 16])
def test_runner_uses_the_smallest_bucket_that_fits(bucketed_bert, tiny_bert_dir, length):
    runner = tsrunner.Runner(bucketed_bert.output)
    generator = torch.Generator().manual_seed(length)
    ids = torch.randint(1000, 30000, (2, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, (length + 1) // 2 :] = 0
    got = runner.run({"input_ids": ids, "attention_mask": mask})
    eager = transformers.BertModel.from_pretrained(tiny_bert_dir).eval()
    with torch.inference_mode():
        want = eager(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert got["last_hidden_state"].shape == (2, length, 32)
    torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state, rtol=0, atol=1e-5)
    with pytest.raises(
        tsrunner.InvalidInput, match="traced for 16: re-export with --max-length 17"
    ):
        runner.run({"input_ids": torch.full((1, 17), 1000)})


def test_tsrun_pads_a_fixed_export_and_refuses_longer_inputs(tsrun, fixed_bert, bucketed_bert):
    import json
    import subprocess

    runner = tsrunner.Runner(fixed_bert)
    for path in (fixed_bert, bucketed_bert.output):
        result = subprocess.run(
            [tsrun, str(path), "--ids", "101,7592,102", "--ids", "101,2088,2003,1012,102", "--raw"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        hidden = json.loads(result.stdout)["last_hidden_state"]
        assert hidden["shape"] == [2, 5, 32]
        ids = torch.tensor([[101, 7592, 102, 0, 0], [101, 2088, 2003, 1012, 102]])
        want = runner.run({"input_ids": ids, "attention_mask": (ids != 0).long()})
        got = torch.tensor(hidden["data"], dtype=torch.float32).view(2, 5, 32)
        torch.testing.assert_close(got, want["last_hidden_state"], rtol=0, atol=1e-5)
    too_long = ",".join(["1000"] * 17)
    result = subprocess.run(
        [tsrun, str(fixed_bert), "--ids", too_long, "--raw"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tsrun: error: invalid input: input has 17 tokens; this export was traced for 16: "
        "re-export with --max-length 17"
    )
