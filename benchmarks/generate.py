"""Decode speed of tsrunner's native generation loop against Hugging Face `generate` (PyTorch),
side by side in one run, on a random GPT-2 small sized model (12 layers, 768 wide, 50,257
tokens; random weights, EOS ignored so every run makes the same number of tokens).

    python benchmarks/generate.py [--batches 1,8] [--prompt-tokens 128] [--new-tokens 128]
                                  [--threads 2] [--rounds 2] [--work-dir DIR] [--reuse]
                                  [--layers 12 --width 768 --vocab 50257]

For each batch: time to first token (the prefill plus one token: max_new_tokens=1) and the
decode rate ((new_tokens - 1) * batch / (total time - time to first token)), best of --rounds
for both contenders; prints the CPU (lscpu's model name), the kernel path and a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_model(directory: Path, layers: int, width: int, vocab: int, context: int) -> Path:
    import torch
    import transformers

    config = transformers.GPT2Config(
        vocab_size=vocab, n_embd=width, n_layer=layers, n_head=max(1, width // 64),
        n_positions=context, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(directory)
    return directory


def best(measure, rounds: int) -> float:
    return min(measure() for _ in range(rounds))


def measure(runner, model, batch: int, args) -> list[tuple[str, int, float, float]]:
    """(contender, batch, time to first token in ms, decode tokens/s) for both contenders."""
    import torch

    from tsrunner import _core

    generator = torch.Generator().manual_seed(batch)
    prompts = torch.randint(1, args.vocab, (batch, args.prompt_tokens), generator=generator)
    ids = prompts.tolist()
    mask = torch.ones_like(prompts)
    native = _core.Generator(runner, max_batch=max(8, batch))

    def ours(new_tokens: int) -> float:
        started = time.perf_counter()
        native.generate(ids, {"max_new_tokens": new_tokens, "ignore_eos": True})
        return time.perf_counter() - started

    def hf(new_tokens: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=prompts, attention_mask=mask, do_sample=False,
                max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            )  # fmt: skip
        return time.perf_counter() - started

    rows = []
    for name, run in (("tsrunner", ours), ("HF generate", hf)):
        run(2)  # warm-up
        first = best(lambda run=run: run(1), args.rounds)
        total = best(lambda run=run: run(args.new_tokens), args.rounds)
        rate = (args.new_tokens - 1) * batch / max(total - first, 1e-9)
        rows.append((name, batch, first * 1e3, rate))
        print(f"{name:12} batch {batch}: first token {first * 1e3:.0f} ms, decode "
              f"{rate:.1f} tokens/s", flush=True)  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "tsr-generate"))
    parser.add_argument("--reuse", action="store_true", help="keep the export of an earlier run")
    args = parser.parse_args()

    import torch
    import transformers

    import tsrunner

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    context = args.prompt_tokens + args.new_tokens + 1
    directory = work / "model"
    archive = work / "model.pt"
    if not (args.reuse and archive.exists()):
        make_model(directory, args.layers, args.width, args.vocab, context)
        started = time.perf_counter()
        tsrunner.export(directory, archive, task="causal-lm")
        print(f"export: {time.perf_counter() - started:.0f} s", flush=True)
    runner = tsrunner.Runner(archive, threads=args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()

    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows += measure(runner, model, batch, args)
    print(f"\nCPU: {cpu_name()}; {args.threads} threads; tsrunner kernel path {runner.engine}; "
          f"GPT-2 {args.layers}x{args.width}, vocab {args.vocab}, prompt {args.prompt_tokens}, "
          f"{args.new_tokens} new tokens, fp32\n")  # fmt: skip
    print("| contender | batch | time to first token (ms) | decode tokens/s | vs HF |")
    print("|---|---|---|---|---|")
    hf_rates = {batch: rate for name, batch, _, rate in rows if name == "HF generate"}
    for name, batch, first, rate in rows:
        print(f"| {name} | {batch} | {first:.0f} | {rate:.1f} | {rate / hf_rates[batch]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
