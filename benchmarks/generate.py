"""Decode speed of tsrunner's native generation loop against Hugging Face `generate` (PyTorch
eager) and CTranslate2 (fp32), side by side in one run, on a random GPT-2 small sized model (12
layers, 768 wide, 50,257 tokens; random weights, EOS ignored so every run makes the same number
of tokens); then `tsrun serve` with 8 concurrent streams against 1 stream.

    python benchmarks/generate.py [--batches 1,8] [--prompt-tokens 128] [--new-tokens 128]
                                  [--threads 2] [--rounds 2] [--work-dir DIR] [--reuse]
                                  [--contenders tsrunner,hf,ct2,serve] [--streams 8]
                                  [--layers 12 --width 768 --vocab 50257]

For each batch: time to first token (the prefill plus one token: max_new_tokens=1) and the
decode rate ((new_tokens - 1) * batch / (total time - time to first token)), best of --rounds
for each contender, the contenders' rounds interleaved. The serve rows are aggregate tokens/s
over whole requests (prefill included) of --streams concurrent /v1/completions requests against
one. Prints the CPU (lscpu's model name), the kernel path and markdown tables (`make
bench-generate`; docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# CTranslate2 takes its AVX2 path on AMD CPUs unless told (docs: peers at their best).
os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX512")


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_model(directory: Path, layers: int, width: int, vocab: int, context: int) -> Path:
    """A random GPT-2 with the tests' trained byte-level BPE tokenizer (CTranslate2's converter
    reads a vocabulary; ids past the tokenizer's are named <extra_id_N> there)."""
    import torch
    import transformers

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import tokenizer_fixtures

    config = transformers.GPT2Config(
        vocab_size=vocab, n_embd=width, n_layer=layers, n_head=max(1, width // 64),
        n_positions=context, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(directory)
    tokenizer_fixtures.save_pretrained("gpt2", directory)
    return directory


def contenders(runner, model, ct2_generator, batch: int, prompts, args) -> dict:
    """name -> run(new_tokens) -> seconds, for the contenders asked for."""
    import torch

    from tsrunner import _core

    ids = prompts.tolist()
    mask = torch.ones_like(prompts)
    runs = {}
    if "tsrunner" in args.contenders:
        native = _core.Generator(runner, max_batch=max(8, batch))

        def ours(new_tokens: int) -> float:
            started = time.perf_counter()
            native.generate(ids, {"max_new_tokens": new_tokens, "ignore_eos": True})
            return time.perf_counter() - started

        runs["tsrunner"] = ours
    if "hf" in args.contenders:

        def hf(new_tokens: int) -> float:
            started = time.perf_counter()
            with torch.inference_mode():
                model.generate(
                    input_ids=prompts, attention_mask=mask, do_sample=False,
                    max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                )  # fmt: skip
            return time.perf_counter() - started

        runs["HF generate"] = hf
    if ct2_generator is not None:
        vocabulary = ct2_vocabulary(args)
        tokens = [[vocabulary[i] for i in row] for row in ids]

        def ct2(new_tokens: int) -> float:
            started = time.perf_counter()
            results = ct2_generator.generate_batch(
                tokens, max_length=new_tokens, min_length=new_tokens, sampling_topk=1,
                include_prompt_in_result=False,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            made = {len(result.sequences_ids[0]) for result in results}
            assert made == {new_tokens}, f"CTranslate2 made {made} tokens, not {new_tokens}"
            return elapsed

        runs["CTranslate2"] = ct2
    return runs


def ct2_vocabulary(args) -> list[str]:
    """The converted model's tokens by id (vocabulary.json, or vocabulary.txt in older
    converters)."""
    folder = Path(args.work_dir) / "ct2"
    if (folder / "vocabulary.json").exists():
        return json.loads((folder / "vocabulary.json").read_text())
    return (folder / "vocabulary.txt").read_text().split("\n")


def measure(runner, model, ct2_generator, batch: int, args) -> list[tuple[str, int, float, float]]:
    """(contender, batch, time to first token in ms, decode tokens/s) for each contender."""
    import torch

    generator = torch.Generator().manual_seed(batch)
    prompts = torch.randint(1, args.vocab, (batch, args.prompt_tokens), generator=generator)
    runs = contenders(runner, model, ct2_generator, batch, prompts, args)
    for run in runs.values():
        run(2)  # warm-up
    # Rounds interleave the contenders, so that a change in the machine's load falls on all.
    firsts = {name: [] for name in runs}
    totals = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            firsts[name].append(run(1))
            totals[name].append(run(args.new_tokens))
    rows = []
    for name in runs:
        first, total = min(firsts[name]), min(totals[name])
        rate = (args.new_tokens - 1) * batch / max(total - first, 1e-9)
        rows.append((name, batch, first * 1e3, rate))
        print(f"{name:12} batch {batch}: first token {first * 1e3:.0f} ms, decode "
              f"{rate:.1f} tokens/s", flush=True)  # fmt: skip
    return rows


def serve_streams(archive: Path, args) -> list[tuple[int, float, float]]:
    """(concurrent streams, aggregate tokens/s, server RSS in MB after them) through `tsrun
    serve`'s /v1/completions."""
    import shutil

    import torch

    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from serve_process import Server

    tsrun = shutil.which("tsrun") or str(Path(sys.executable).parent / "tsrun")
    generator = torch.Generator().manual_seed(99)
    prompts = torch.randint(1, args.vocab, (args.streams, args.prompt_tokens), generator=generator)
    rows = []
    with Server(tsrun, [archive], "--max-sequences", str(args.streams), timeout=600) as server:

        def one(prompt: list[int], made: list[int]) -> None:
            body = {"prompt": prompt, "max_tokens": args.new_tokens, "ignore_eos": True}
            status, answer = server.post("/v1/completions", body, timeout=3600)
            assert status == 200, answer
            made.append(answer["usage"]["completion_tokens"])

        def streams(count: int) -> float:
            made: list[int] = []
            threads = [
                threading.Thread(target=one, args=(prompts[i].tolist(), made)) for i in range(count)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            assert made == [args.new_tokens] * count
            return count * args.new_tokens / elapsed

        streams(1)  # warm-up
        for count in (1, args.streams):
            rate = max(streams(count) for _ in range(args.rounds))
            rss = server.rss_bytes() / 2**20
            rows.append((count, rate, rss))
            print(f"tsrun serve  {count} stream(s): {rate:.1f} tokens/s aggregate, server RSS "
                  f"{rss:.0f} MB", flush=True)  # fmt: skip
    return rows


def convert_ct2(directory: Path, args) -> None:
    import ctranslate2

    target = Path(args.work_dir) / "ct2"
    if args.reuse and (target / "model.bin").exists():
        return
    # The random model's 50,257 ids outnumber the small trained tokenizer's vocabulary, which
    # CTranslate2's GPT-2 loader takes as the model's: name the ids past it <extra_id_N>.
    loader = ctranslate2.converters.transformers.GPT2Loader
    tokenizer_vocabulary = loader.get_vocabulary

    def padded_vocabulary(self, model, tokenizer):
        tokens = tokenizer_vocabulary(self, model, tokenizer)
        extra = model.config.vocab_size - len(tokens)
        return tokens + [f"<extra_id_{i}>" for i in range(extra)]

    loader.get_vocabulary = padded_vocabulary
    converter = ctranslate2.converters.TransformersConverter(str(directory))
    converter.convert(str(target), quantization="float32", force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--contenders", default="tsrunner,hf,ct2,serve")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "tsr-generate"))
    parser.add_argument("--reuse", action="store_true", help="keep the exports of an earlier run")
    args = parser.parse_args()
    args.contenders = set(args.contenders.split(","))

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
    ct2_generator = None
    if "ct2" in args.contenders:
        import ctranslate2

        convert_ct2(directory, args)
        ct2_generator = ctranslate2.Generator(
            str(work / "ct2"), device="cpu", compute_type="float32",
            intra_threads=args.threads, inter_threads=1,
        )  # fmt: skip
        print(f"CTranslate2 {ctranslate2.__version__}, CT2_FORCE_CPU_ISA="
              f"{os.environ['CT2_FORCE_CPU_ISA']}", flush=True)  # fmt: skip

    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows += measure(runner, model, ct2_generator, batch, args)
    serve_rows = serve_streams(archive, args) if "serve" in args.contenders else []

    path = runner.kernel_path
    print(f"\nCPU: {cpu_name()}; {args.threads} threads; tsrunner kernel path {path}; "
          f"GPT-2 {args.layers}x{args.width}, vocab {args.vocab}, prompt {args.prompt_tokens}, "
          f"{args.new_tokens} new tokens, fp32, EOS ignored\n")  # fmt: skip
    print("| contender | batch | time to first token (ms) | decode tokens/s | vs HF | vs CT2 |")
    print("|---|---|---|---|---|---|")
    by = {(name, batch): rate for name, batch, _, rate in rows}
    for name, batch, first, rate in rows:
        hf = by.get(("HF generate", batch))
        ct2 = by.get(("CTranslate2", batch))
        print(f"| {name} | {batch} | {first:.0f} | {rate:.1f} | "
              f"{f'{rate / hf:.2f}x' if hf else '-'} | "
              f"{f'{rate / ct2:.2f}x' if ct2 else '-'} |")  # fmt: skip
    if serve_rows:
        one = serve_rows[0][1]
        print(
            "\n| tsrun serve, /v1/completions | aggregate tokens/s | vs 1 stream | server RSS MB |"
        )
        print("|---|---|---|---|")
        for count, rate, rss in serve_rows:
            print(f"| {count} concurrent stream(s) | {rate:.1f} | {rate / one:.2f}x | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
