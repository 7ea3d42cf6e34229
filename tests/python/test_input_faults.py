"""Every kind of bad input named in the contract: InvalidInput (a ValueError) naming the input,
the position and the value; one line; the runner stays usable and gives the same results."""

from __future__ import annotations

import subprocess

import pytest
import torch

import tsrunner


@pytest.fixture(scope="module")
def runner(tiny_bert_pt):
    return tsrunner.Runner(tiny_bert_pt, threads=1)


def _ids(batch=2, sequence=6):
    return torch.randint(1000, 30000, (batch, sequence), generator=torch.Generator().manual_seed(3))


def _with(position, value, like=None):
    tensor = torch.zeros_like(_ids()) if like is None else like.clone()
    tensor[position] = value
    return tensor


CASES = {
    "type id too large": (
        {"input_ids": _ids(), "token_type_ids": _with((1, 2), 2)},
        r'input "token_type_ids" has value 2 at \[1\]\[2\], outside the valid range \[0, 2\)',
    ),
    "negative type id": (
        {"input_ids": _ids(), "token_type_ids": _with((0, 5), -1)},
        r'input "token_type_ids" has value -1 at \[0\]\[5\], outside the valid range \[0, 2\)',
    ),
    "negative mask": (
        {"input_ids": _ids(), "attention_mask": _with((1, 0), -1, torch.ones_like(_ids()))},
        r'input "attention_mask" has value -1 at \[1\]\[0\], outside the valid range \[0, 2\)',
    ),
    "negative id": (
        {"input_ids": _with((0, 1), -3, _ids())},
        r'input "input_ids" has value -3 at \[0\]\[1\], outside the valid range \[0, 30522\)',
    ),
    "huge id": (
        {"input_ids": _with((1, 5), 2**63 - 1, _ids())},
        r'input "input_ids" has value 9223372036854775807 at \[1\]\[5\]',
    ),
    "float mask": (
        {"input_ids": _ids(), "attention_mask": torch.ones(2, 6)},
        'input "attention_mask" has dtype float32, expected int64',
    ),
    "bool mask": (
        {"input_ids": _ids(), "attention_mask": torch.ones(2, 6, dtype=torch.bool)},
        'input "attention_mask" has dtype bool, expected int64',
    ),
    "scalar": ({"input_ids": torch.tensor(101)}, 'input "input_ids" has 0 dimensions, expected 2'),
    "rank 3": ({"input_ids": _ids().unsqueeze(0)}, 'input "input_ids" has 3 dimensions'),
    "batch 0": ({"input_ids": _ids()[:0]}, 'input "input_ids" has an empty batch dimension'),
    "sequence 0": ({"input_ids": _ids()[:, :0]}, 'input "input_ids" has an empty sequence'),
    "batch mismatch": (
        {"input_ids": _ids(), "token_type_ids": torch.zeros(3, 6, dtype=torch.long)},
        'input "token_type_ids" has batch size 3 but "input_ids" has 2',
    ),
    "sequence mismatch": (
        {"input_ids": _ids(), "attention_mask": torch.ones(2, 7, dtype=torch.long)},
        'input "attention_mask" has sequence size 7 but "input_ids" has 6',
    ),
    "too long": (
        {"input_ids": _ids(1, 65)},
        "input has 65 tokens; this export was validated up to 64",
    ),
    "missing": ({"token_type_ids": _ids()}, 'missing input "input_ids"'),
    "unknown": ({"input_ids": _ids(), "position_ids": _ids()}, 'unknown input "position_ids"'),
    "not a tensor": ({"input_ids": [[101, 102]]}, 'input "input_ids" must be a torch.Tensor'),
    "name not a string": ({1: _ids()}, "input names must be strings, got int"),
    "not a dict": ([("input_ids", _ids())], "inputs must be a dict of name to torch.Tensor"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_the_runner_stays_usable(runner, case):
    inputs, message = CASES[case]
    good = {"input_ids": _ids()}
    before = runner.run(good)
    with pytest.raises(tsrunner.InvalidInput, match=message) as caught:
        runner.run(inputs)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    after = runner.run(good)
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_non_contiguous_inputs_give_the_same_results(runner):
    ids = _ids(3, 8)
    strided = ids.t().contiguous().t()
    assert not strided.is_contiguous()
    expected = runner.run({"input_ids": ids})
    got = runner.run({"input_ids": strided})
    assert all(torch.equal(expected[name], got[name]) for name in expected)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("101,-5,102", 'input "input_ids" has value -5 at [0][1]'),
        ("101,99999999999999999999", '"99999999999999999999" is not an integer'),
        ("", '"" is not an integer'),
        ("101 102", '"101 102" is not an integer'),
        (",".join(["101"] * 200), "input has 200 tokens"),
    ],
)
def test_tsrun_bad_ids_exit_2(tsrun, tiny_bert_pt, ids, message):
    result = subprocess.run(
        [tsrun, str(tiny_bert_pt), "--ids", ids, "--raw"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
