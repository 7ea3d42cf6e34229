"""Decode speed of tsrunner's native generation loop against Hugging Face `generate` (PyTorch
eager) and CTranslate2 (fp32), side by side in one run, on random models of two real sizes
(random weights, EOS ignored so every run makes the same number of tokens): a GPT-2 small (12
layers, 768 wide, 50,257 tokens) and a T5-small (6 + 6 layers, d_model 512, 8 heads, d_ff 2048,
32,128 tokens); then `tsrun serve` with 8 concurrent streams against 1 stream.

    python benchmarks/generate.py [--models gpt2,t5] [--batches 1,8] [--prompt-tokens 128]
                                  [--new-tokens 128] [--threads 2] [--rounds 2] [--work-dir DIR]
                                  [--reuse] [--contenders tsrunner,hf,ct2,serve] [--streams 8]

For each model and batch: time to first token (the prefill, or encode, plus one token:
max_new_tokens=1) and the decode rate ((new_tokens - 1) * batch / (total time - time to first
token)), best of --rounds for each contender, the contenders' rounds interleaved so that a change
in the machine's load falls on all of them; the 1-minute load average is recorded beside every
figure. The serve rows are aggregate tokens/s over whole requests (prefill included) of
--streams concurrent /v1/completions requests against one. Prints the CPU (lscpu's model name),
the kernel path and markdown tables (`make bench-generate`; docs/benchmarks.md).
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
from dataclasses import dataclass
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


def load() -> float:
    return os.getloadavg()[0]


@dataclass
class ModelKind:
    name: str
    task: str  # tsrunner export task
    seq2seq: bool
    vocab: int
    describe: str


MODELS = {
    "gpt2": ModelKind("gpt2", "causal-lm", False, 50257, "GPT-2 small: 12 layers x 768, 12 heads"),
    "t5": ModelKind(
        "t5", "text2text", True, 32128, "T5-small: 6+6 layers, d_model 512, 8 heads, d_ff 2048"
    ),
}


def make_model(kind: ModelKind, directory: Path, context: int) -> Path:
    """A random model of `kind` with the tests' trained tokenizer of its family (CTranslate2's
    converters read a vocabulary; ids past the tokenizer's are named <extra_id_N> there)."""
    import torch
    import transformers

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import tokenizer_fixtures

    torch.manual_seed(0)
    if kind.name == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=kind.vocab, n_embd=768, n_layer=12, n_head=12, n_positions=context,
            bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )  # fmt: skip
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.T5Config(
            vocab_size=kind.vocab, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
            num_decoder_layers=6, num_heads=8, feed_forward_proj="relu",
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        )  # fmt: skip
        model = transformers.T5ForConditionalGeneration(config)
    model.eval().save_pretrained(directory)
    tokenizer_fixtures.save_pretrained(kind.name, directory)
    return directory


def contenders(runner, model, ct2_model, kind: ModelKind, batch: int, prompts, args) -> dict:
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
                    input_ids=prompts, attention_mask=mask, do_sample=False, num_beams=1,
                    max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                )  # fmt: skip
            return time.perf_counter() - started

        runs["HF generate"] = hf
    if ct2_model is not None:
        vocabulary = ct2_vocabulary(args.work_dir, kind)
        tokens = [[vocabulary[i] for i in row] for row in ids]

        def ct2(new_tokens: int) -> float:
            started = time.perf_counter()
            if kind.seq2seq:
                results = ct2_model.translate_batch(
                    tokens, max_decoding_length=new_tokens, min_decoding_length=new_tokens,
                    beam_size=1,
                )  # fmt: skip
                made = {len(result.hypotheses[0]) for result in results}
            else:
                results = ct2_model.generate_batch(
                    tokens, max_length=new_tokens, min_length=new_tokens, sampling_topk=1,
                    include_prompt_in_result=False,
                )  # fmt: skip
                made = {len(result.sequences_ids[0]) for result in results}
            elapsed = time.perf_counter() - started
            assert made == {new_tokens}, f"CTranslate2 made {made} tokens, not {new_tokens}"
            return elapsed

        runs["CTranslate2"] = ct2
    return runs


def ct2_vocabulary(work_dir: str, kind: ModelKind) -> list[str]:
    """The converted model's tokens by id (vocabulary.json, or the shared or target vocabulary
    of older converters and of translators)."""
    folder = Path(work_dir) / kind.name / "ct2"
    for name in ("vocabulary.json", "shared_vocabulary.json", "target_vocabulary.json"):
        if (folder / name).exists():
            return json.loads((folder / name).read_text())
    for name in ("vocabulary.txt", "shared_vocabulary.txt"):
        if (folder / name).exists():
            return (folder / name).read_text().split("\n")
    raise FileNotFoundError(f"no vocabulary in {folder}")


def measure(runner, model, ct2_model, kind: ModelKind, batch: int, args) -> list[dict]:
    """One row per contender: batch, time to first token (ms), decode tokens/s and the mean
    1-minute load average over its timed runs."""
    import torch

    generator = torch.Generator().manual_seed(batch)
    prompts = torch.randint(3, kind.vocab, (batch, args.prompt_tokens), generator=generator)
    runs = contenders(runner, model, ct2_model, kind, batch, prompts, args)
    for run in runs.values():
        run(2)  # warm-up
    firsts = {name: [] for name in runs}
    totals = {name: [] for name in runs}
    loads = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            loads[name].append(load())
            firsts[name].append(run(1))
            totals[name].append(run(args.new_tokens))
    rows = []
    for name in runs:
        first, total = min(firsts[name]), min(totals[name])
        rate = (args.new_tokens - 1) * batch / max(total - first, 1e-9)
        average_load = sum(loads[name]) / len(loads[name])
        rows.append({"model": kind.name, "contender": name, "batch": batch,
                     "first_ms": first * 1e3, "rate": rate, "load": average_load})  # fmt: skip
        print(f"{kind.name} {name:12} batch {batch}: first token {first * 1e3:.0f} ms, decode "
              f"{rate:.1f} tokens/s (load {average_load:.1f})", flush=True)  # fmt: skip
    return rows


def serve_streams(archive: Path, kind: ModelKind, args) -> list[dict]:
    """Aggregate tokens/s of 1 and --streams concurrent /v1/completions requests through `tsrun
    serve`, and the server's RSS after them."""
    import shutil

    import torch

    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from serve_process import Server

    tsrun = shutil.which("tsrun") or str(Path(sys.executable).parent / "tsrun")
    generator = torch.Generator().manual_seed(99)
    prompts = torch.randint(3, kind.vocab, (args.streams, args.prompt_tokens), generator=generator)
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
        # Interleaved rounds, as the contenders': 1 stream, then all, then again.
        rates: dict[int, list[float]] = {1: [], args.streams: []}
        loads: dict[int, list[float]] = {1: [], args.streams: []}
        for _ in range(args.rounds):
            for count in rates:
                loads[count].append(load())
                rates[count].append(streams(count))
        rss = server.rss_bytes() / 2**20
        for count in rates:
            rate = max(rates[count])
            average_load = sum(loads[count]) / len(loads[count])
            rows.append({"model": kind.name, "streams": count, "rate": rate, "rss": rss,
                         "load": average_load})  # fmt: skip
            print(f"{kind.name} tsrun serve {count} stream(s): {rate:.1f} tokens/s aggregate, "
                  f"server RSS {rss:.0f} MB (load {average_load:.1f})", flush=True)  # fmt: skip
    return rows


def convert_ct2(directory: Path, kind: ModelKind, args) -> Path:
    import ctranslate2

    target = Path(args.work_dir) / kind.name / "ct2"
    if args.reuse and (target / "model.bin").exists():
        return target
    if kind.name == "gpt2":
        # The random model's 50,257 ids outnumber the small trained tokenizer's vocabulary,
        # which CTranslate2's GPT-2 loader takes as the model's: name the ids past it
        # <extra_id_N> (its T5 loader does the same by itself).
        loader = ctranslate2.converters.transformers.GPT2Loader
        tokenizer_vocabulary = loader.get_vocabulary

        def padded_vocabulary(self, model, tokenizer):
            tokens = tokenizer_vocabulary(self, model, tokenizer)
            extra = model.config.vocab_size - len(tokens)
            return tokens + [f"<extra_id_{i}>" for i in range(extra)]

        loader.get_vocabulary = padded_vocabulary
    converter = ctranslate2.converters.TransformersConverter(str(directory))
    converter.convert(str(target), quantization="float32", force=True)
    return target


def bench_model(kind: ModelKind, args) -> tuple[list[dict], list[dict], str]:
    import torch
    import transformers

    import tsrunner

    work = Path(args.work_dir) / kind.name
    work.mkdir(parents=True, exist_ok=True)
    context = args.prompt_tokens + args.new_tokens + 1
    directory = work / "model"
    archive = work / "model.pt"
    if not (args.reuse and archive.exists()):
        make_model(kind, directory, context)
        started = time.perf_counter()
        tsrunner.export(directory, archive, task=kind.task, max_length=context)
        print(f"{kind.name} export: {time.perf_counter() - started:.0f} s", flush=True)
    runner = tsrunner.Runner(archive, threads=args.threads)
    auto = transformers.AutoModelForSeq2SeqLM if kind.seq2seq else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(directory).eval()
    ct2_model = None
    if "ct2" in args.contenders:
        import ctranslate2

        target = convert_ct2(directory, kind, args)
        peer = ctranslate2.Translator if kind.seq2seq else ctranslate2.Generator
        ct2_model = peer(
            str(target), device="cpu", compute_type="float32", intra_threads=args.threads,
            inter_threads=1,
        )  # fmt: skip
        print(f"CTranslate2 {ctranslate2.__version__}, CT2_FORCE_CPU_ISA="
              f"{os.environ['CT2_FORCE_CPU_ISA']}", flush=True)  # fmt: skip
    torch.set_num_threads(args.threads)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows += measure(runner, model, ct2_model, kind, batch, args)
    del runner, model, ct2_model
    serve_rows = serve_streams(archive, kind, args) if "serve" in args.contenders else []
    engine = tsrunner.Runner(archive, threads=args.threads).kernel_path_reason
    return rows, serve_rows, engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2,t5", help="gpt2, t5 or both")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--contenders", default="tsrunner,hf,ct2,serve")
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "tsr-generate"))
    parser.add_argument("--reuse", action="store_true", help="keep the exports of an earlier run")
    args = parser.parse_args()
    args.contenders = set(args.contenders.split(","))
    kinds = []
    for name in args.models.split(","):
        if name not in MODELS:
            parser.error(f"--models: unknown model {name!r} (expected gpt2 or t5)")
        kinds.append(MODELS[name])

    import torch

    torch.set_num_threads(args.threads)
    results = [(kind, *bench_model(kind, args)) for kind in kinds]

    print(f"\nCPU: {cpu_name()}; {args.threads} threads; prompt (source) {args.prompt_tokens} "
          f"tokens, {args.new_tokens} new tokens, fp32, greedy, EOS ignored\n")  # fmt: skip
    for kind, rows, serve_rows, engine in results:
        print(f"{kind.describe}, vocabulary {kind.vocab}; tsrunner kernel path: {engine}\n")
        print("| model | contender | batch | time to first token (ms) | decode tokens/s | vs HF "
              "| vs CT2 | load avg |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        by = {(row["contender"], row["batch"]): row["rate"] for row in rows}
        for row in rows:
            hf = by.get(("HF generate", row["batch"]))
            ct2 = by.get(("CTranslate2", row["batch"]))
            vs_hf = f"{row['rate'] / hf:.2f}x" if hf else "-"
            vs_ct2 = f"{row['rate'] / ct2:.2f}x" if ct2 else "-"
            print(f"| {kind.name} | {row['contender']} | {row['batch']} | {row['first_ms']:.0f} "
                  f"| {row['rate']:.1f} | {vs_hf} | {vs_ct2} | {row['load']:.1f} |")  # fmt: skip
        if serve_rows:
            one = serve_rows[0]["rate"]
            print(f"\n| {kind.name}: tsrun serve, /v1/completions | aggregate tokens/s | "
                  "vs 1 stream | server RSS MB | load avg |")  # fmt: skip
            print("|---|---|---|---|---|")
            for row in serve_rows:
                rate, streams = row["rate"], row["streams"]
                print(f"| {streams} concurrent stream(s) | {rate:.1f} | {rate / one:.2f}x | "
                      f"{row['rss']:.0f} | {row['load']:.1f} |")  # fmt: skip
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
