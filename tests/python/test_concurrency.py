"""One Runner shared by many Python threads (the GIL is released while the model runs), and
resident memory that stays flat over thousands of calls through the bindings."""

from __future__ import annotations

import random
import threading

import pytest
import torch

import tsrunner


def _random_inputs(rng: random.Random, max_sequence: int = 64) -> dict[str, torch.Tensor]:
    batch, sequence = rng.randint(1, 4), rng.randint(1, max_sequence)
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    ids = torch.randint(1000, 30000, (batch, sequence), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, rng.randint(1, sequence) :] = 0  # a padded row
    types = torch.randint(0, 2, (batch, sequence), generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def test_eight_threads_give_the_single_threaded_results(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt, threads=1)  # see tests/cpp/concurrency_test.cc
    rng = random.Random(5)
    calls = [_random_inputs(rng, max_sequence=32) for _ in range(64)]
    expected = [runner.run(inputs) for inputs in calls]
    mismatches: list[str] = []
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        pick = random.Random(seed)
        try:
            for _ in range(200):
                k = pick.randrange(len(calls))
                got = runner.run(calls[k])
                mismatches.extend(
                    f"call {k} {name}"
                    for name in got
                    if not torch.equal(got[name], expected[k][name])
                )
        except BaseException as error:  # reported by the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert errors == []
    assert mismatches == []


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    pytest.fail("no VmRSS in /proc/self/status")


def test_resident_memory_stays_flat_over_five_thousand_calls(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt, threads=1)
    rng = random.Random(9)
    inputs = [_random_inputs(rng, max_sequence=16) for _ in range(50)]
    at_1000 = 0
    for call in range(1, 5001):
        outputs = runner.run(inputs[call % len(inputs)])
        assert len(outputs) == 2
        if call == 1000:
            at_1000 = _resident_kib()
    growth = _resident_kib() - at_1000
    assert growth <= 32 * 1024, f"resident memory grew {growth} KiB between calls 1000 and 5000"
