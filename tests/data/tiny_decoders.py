"""Tiny random decoder-only models for the generation tests: GPT-2 and Llama-style decoders
(Llama, Qwen2, Mistral: RoPE, grouped-query attention), 2 layers, 32 wide, with a GPT-2 style
byte-level BPE tokenizer trained offline (tokenizer_fixtures.py). <|endoftext|> (id 0) is BOS,
EOS and padding."""

from __future__ import annotations

from pathlib import Path

KINDS = ("gpt2", "llama", "qwen2", "mistral")
CONTEXT = 64


def make_decoder(kind: str, directory: Path, *, seed: int = 0) -> Path:
    import tokenizer_fixtures
    import torch
    import transformers

    special = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=1000, n_embd=32, n_layer=2, n_head=4, n_positions=CONTEXT, **special
        )
        model_class = transformers.GPT2LMHeadModel
    elif kind in ("llama", "qwen2", "mistral"):
        prefix = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral"}[kind]
        config = getattr(transformers, f"{prefix}Config")(
            vocab_size=1000,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # grouped-query attention
            max_position_embeddings=CONTEXT,
            **special,
        )
        model_class = getattr(transformers, f"{prefix}ForCausalLM")
    else:
        raise ValueError(f"unknown decoder kind {kind!r}; expected one of {KINDS}")
    torch.manual_seed(seed)
    model = model_class(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer_fixtures.save_pretrained("gpt2", directory)
    return directory
