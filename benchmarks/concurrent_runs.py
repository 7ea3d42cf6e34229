"""Do concurrent runs on one Runner execute at once? Calls per second from 1 and N caller
threads sharing one Runner, for each model given, the models alternating round by round.

    python benchmarks/concurrent_runs.py MODEL [MODEL ...] [--callers 1,2] [--threads 1]
                                          [--shape 1x128] [--seconds 5] [--rounds 3]

Each caller loops on Runner.run (which releases the GIL) over the same real-text batch. A
runner whose runs serialize gives the same calls/s with 2 callers as with 1; one whose runs
execute at once gains up to the number of free cores. On a loaded machine, where no core is
free, the CPU the process gets (CPU s per wall s) still tells: serialized runs keep one thread
runnable whatever the callers, parallel ones N. Prints the CPU, the load average and a markdown
table (medians over rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path


def calls_per_second(runner, inputs, callers: int, seconds: float) -> tuple[float, float]:
    """(calls per second, CPU seconds per second: how many cores the process kept busy)."""
    counts = [0] * callers
    stop = time.perf_counter() + seconds
    start = threading.Barrier(callers)

    def work(index: int) -> None:
        start.wait()
        while time.perf_counter() < stop:
            runner.run(inputs)
            counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(callers)]
    began, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return sum(counts) / wall, (time.process_time() - cpu) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--callers", default="1,2")
    parser.add_argument("--threads", type=int, default=1, help="the runner's intra-op threads")
    parser.add_argument("--shape", default="1x128")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import peers  # benchmarks/ is on sys.path when run as a script
    import transformers

    import tsrunner

    [(batch, sequence)] = peers.parse_shapes(args.shape)
    callers = [int(n) for n in args.callers.split(",")]
    tokenizer = transformers.AutoTokenizer.from_pretrained(peers.minilm_directory())
    inputs = peers.real_text_inputs(tokenizer, batch, sequence)
    runners = {}
    for model in args.models:
        runner = tsrunner.Runner(model, threads=args.threads)
        runner.run(inputs)  # warm-up
        runners[f"{Path(model).name} ({runner.kernel_path})"] = runner
    results: dict[tuple[str, int], list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, runner in runners.items():
            for count in callers:
                rate, busy = calls_per_second(runner, inputs, count, args.seconds)
                results.setdefault((name, count), []).append(rate)
                results.setdefault((name, -count), []).append(busy)
        loads.append(os.getloadavg()[0])

    load = f"load average {min(loads):.1f}-{max(loads):.1f}"
    print(f"CPU: {peers.cpu_model()}, {os.cpu_count()} cores; {args.threads} intra-op thread(s) "
          f"per run; {batch}x{sequence}; {load}")  # fmt: skip
    print()
    header = " | ".join(f"{n} caller(s): calls/s (CPU s per s)" for n in callers)
    print(f"| model (engine) | {header} | calls/s {callers[-1]} / {callers[0]} |")
    print("| --- |" + " ---: |" * (len(callers) + 1))
    for name in runners:
        rates = [statistics.median(results[(name, n)]) for n in callers]
        busy = [statistics.median(results[(name, -n)]) for n in callers]
        cells = " | ".join(f"{rate:.1f} ({cpu:.2f})" for rate, cpu in zip(rates, busy, strict=True))
        print(f"| {name} | {cells} | {rates[-1] / rates[0]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
