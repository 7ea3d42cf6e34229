"""tsrunner's short-sequence kernels on and off, side by side in one process.

    python benchmarks/fusion_ab.py model.pt [--shape 1x16] [--rounds 20] [--threads 2]

Loads the model four times with the load-time switches (docs/cli.md): `base` with
TSR_FUSED_ATTENTION=0 and TSR_FUSED_LAYER_NORM=0, `attn` with the attention kernel only
(TSR_FUSED_ATTENTION=op: on LibTorch's views of the Q/K/V GEMM's output), `attn+ln` with the
layer norm kernel too, `all` the default (attention also reading the Q/K/V output in place),
then times blocks of calls of each Runner in turn, the order reversed every round, so the four
share the machine's state. Prints each one's median
wall and CPU time per call and, per round, base's time over each one's (median [p10, p90]),
plus the largest output difference to `base`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import tsrunner

SWITCHES = ("TSR_FUSED_ATTENTION", "TSR_FUSED_LAYER_NORM")
CONFIGS = {
    "base": {"TSR_FUSED_ATTENTION": "0", "TSR_FUSED_LAYER_NORM": "0"},
    "attn": {"TSR_FUSED_ATTENTION": "op", "TSR_FUSED_LAYER_NORM": "0"},
    "attn+ln": {"TSR_FUSED_ATTENTION": "op"},
    "all": {},
}


def load(path: str, threads: int) -> dict[str, tsrunner.Runner]:
    saved = {name: os.environ.get(name) for name in SWITCHES}
    runners = {}
    try:
        for label, env in CONFIGS.items():
            for name in SWITCHES:
                os.environ.pop(name, None)
            os.environ.update(env)
            runners[label] = tsrunner.Runner(path, threads=threads)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
    return runners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--shape", default="1x16", help="BATCHxTOKENS")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    batch, tokens = (int(part) for part in args.shape.split("x"))
    runners = load(args.model, args.threads)
    for label, runner in runners.items():
        print(f"{label}: {runner.kernel_path_reason}")
    ids = torch.randint(1000, 2000, (batch, tokens), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    inputs["token_type_ids"] = torch.zeros_like(ids)
    inputs = {name: inputs[name] for name in runners["base"].input_names}
    reference = runners["base"].run(inputs)
    for label, runner in runners.items():
        out = runner.run(inputs)
        diff = max((out[name] - reference[name]).abs().max().item() for name in out)
        print(f"{label}: max |diff| to base {diff:.2e}")
        for _ in range(20):
            runner.run(inputs)
    calls = max(2, 640 // (batch * tokens))
    wall = {label: [] for label in runners}
    cpu = {label: [] for label in runners}
    for index in range(args.rounds):
        order = list(runners) if index % 2 == 0 else list(runners)[::-1]
        for label in order:
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(calls):
                runners[label].run(inputs)
            wall[label].append((time.perf_counter() - started) / calls * 1e3)
            cpu[label].append((time.process_time() - cpu_started) / calls * 1e3)
    for label in runners:
        ratios = sorted(b / t for b, t in zip(wall["base"], wall[label], strict=True))
        tenth = len(ratios) // 10
        print(
            f"{label}: wall {statistics.median(wall[label]):.3f} ms, CPU "
            f"{statistics.median(cpu[label]):.3f} ms per call; base/this per round "
            f"{statistics.median(ratios):.3f} [{ratios[tenth]:.3f}, {ratios[-1 - tenth]:.3f}]"
        )


if __name__ == "__main__":
    main()
