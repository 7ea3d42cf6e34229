"""Where a decode step's time goes: LibTorch's profiler around tsrunner's native generation loop
(the ops of every decode step of one `generate` call, the prefill's excluded by difference).

    python benchmarks/generate_profile.py MODEL.pt [--batch 8] [--prompt-tokens 128]
                                          [--new-tokens 64] [--threads 2] [--rows 25]
                                          [--warmup TOKENS]

Runs one `generate` of `--new-tokens` and one of a single token under the profiler, and prints
per op the time of the decode steps (the difference of the two), per step, and its share of the
decode time, largest first (docs/benchmarks.md, "Generation (issue 26)").
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict


def profile(generator, prompts, new_tokens: int) -> tuple[float, dict[str, tuple[float, int]]]:
    """(wall seconds, op name -> (self CPU microseconds, calls)) of one generate call."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as trace:
        started = time.perf_counter()
        generator.generate(prompts, {"max_new_tokens": new_tokens, "ignore_eos": True})
        wall = time.perf_counter() - started
    ops: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in trace.key_averages():
        ops[event.key][0] += event.self_cpu_time_total
        ops[event.key][1] += event.count
    return wall, {name: (value[0], int(value[1])) for name, value in ops.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument(
        "--warmup", type=int, default=None, help="tokens of the untimed first run (--new-tokens)"
    )
    args = parser.parse_args()

    import torch

    import tsrunner
    from tsrunner import _core

    torch.set_num_threads(args.threads)
    runner = tsrunner.Runner(args.model, threads=args.threads)
    vocab = runner.manifest["vocab_size"]
    generator = _core.Generator(runner, max_batch=max(8, args.batch))
    random = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, vocab, (args.batch, args.prompt_tokens), generator=random).tolist()
    warmup = args.warmup or args.new_tokens
    generator.generate(prompts, {"max_new_tokens": warmup, "ignore_eos": True})
    wall_all, ops_all = profile(generator, prompts, args.new_tokens)
    wall_one, ops_one = profile(generator, prompts, 1)
    steps = args.new_tokens - 1
    decode_wall = wall_all - wall_one
    rows = []
    for name, (micros, calls) in ops_all.items():
        micros_one, calls_one = ops_one.get(name, (0.0, 0))
        rows.append((name, (micros - micros_one) / steps, (calls - calls_one) / steps))
    rows.sort(key=lambda row: -row[1])
    total = sum(row[1] for row in rows if row[1] > 0)
    print(f"engine: {runner.kernel_path_reason}")
    print(f"batch {args.batch}, prompt {args.prompt_tokens}, {steps} decode steps: "
          f"{decode_wall / steps * 1e3:.2f} ms per step wall (profiled), ops "
          f"{total / 1e3:.2f} ms per step")  # fmt: skip
    print("| op | ms per step | calls per step | share |")
    print("|---|---:|---:|---:|")
    for name, micros, calls in rows[: args.rows]:
        print(f"| {name} | {micros / 1e3:.3f} | {calls:.0f} | {micros / total:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
