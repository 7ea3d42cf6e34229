"""tsrunner::attention: the short-sequence self-attention the oneDNN kernel path puts in place of
aten::scaled_dot_product_attention at load (TSR_FUSED_ATTENTION=0 turns the rewrite off).

The op must compute what LibTorch's operator does (against float64, the same tolerance), for
the strided Q/K/V views the merged Q/K/V GEMM produces, padding masks, several sentences, odd
lengths, head sizes on and off its AVX-512 kernel, and hand what it does not take (long
sequences, rows with every key masked) back to LibTorch. A Runner with the rewrite must match
one without it; the graph-side matching (what is and is not rewritten) is tested in C++
(tests/cpp/attention_fusion_test.cc).
"""

from __future__ import annotations

import shutil

import pytest
import torch
import transformers

import tsrunner

THREADS = 2


def _reference(query, key, value, mask, scale):
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.double()
    return torch.nn.functional.scaled_dot_product_attention(
        query.double(), key.double(), value.double(), attn_mask=mask, scale=scale
    )


def _merged_qkv_views(batch, heads, length, head_size, generator):
    # As the fast path's graph has them: slices of one [B, T, 3 x hidden] GEMM output,
    # reshaped to heads and transposed, never copied.
    hidden = heads * head_size
    qkv = torch.randn(batch, length, 3 * hidden, generator=generator)
    return [
        qkv[..., part * hidden : (part + 1) * hidden]
        .reshape(batch, length, heads, head_size)
        .transpose(1, 2)
        for part in range(3)
    ]


def _padding_mask(batch, length, generator):
    # HF's SDPA mask: [B, 1, T, T] booleans, true where the key is a real token.
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    keys = torch.arange(length)[None, :] < lengths[:, None]
    return keys[:, None, None, :].expand(batch, 1, length, length).contiguous()


@pytest.mark.parametrize(
    "batch, heads, length, head_size, mask_kind",
    [(1, 12, 16, 32, "padding"), (3, 12, 7, 32, "padding"), (2, 4, 33, 64, "padding"),
     (1, 2, 1, 16, "none"), (2, 3, 13, 32, "float"), (4, 2, 17, 48, "padding"),
     (2, 4, 11, 8, "padding"), (2, 3, 9, 12, "float"), (1, 12, 128, 32, "padding"),
     (1, 2, 129, 32, "padding")],
)  # fmt: skip
@pytest.mark.parametrize("threads", [1, THREADS])
def test_attention_op_matches_scaled_dot_product_attention(
    batch, heads, length, head_size, mask_kind, threads
):
    # Head sizes 16/32/48/64 take the AVX-512 kernel where the CPU has it, 8 and 12 the portable
    # one; 129 tokens are past the kernel's limit (LibTorch's operator runs).
    generator = torch.Generator().manual_seed(batch * 1000 + length)
    query, key, value = _merged_qkv_views(batch, heads, length, head_size, generator)
    mask = {
        "none": None,
        "padding": _padding_mask(batch, length, generator) if mask_kind == "padding" else None,
        "float": torch.randn(batch, 1, length, length, generator=generator),
    }[mask_kind]
    scale = None if head_size == 32 else 0.3
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            got = torch.ops.tsrunner.attention(query, key, value, mask, scale)
    finally:
        torch.set_num_threads(previous)
    want = _reference(query, key, value, mask, scale)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    # Laid out [B, T, H, D] as LibTorch's kernel returns it: the output projection's
    # transpose + reshape then copies nothing.
    assert got.transpose(1, 2).is_contiguous()


def test_rows_with_every_key_masked_get_what_libtorch_gives_them():
    generator = torch.Generator().manual_seed(0)
    query, key, value = _merged_qkv_views(2, 4, 6, 32, generator)
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    mask[1, :, 2, :] = False  # one query row of the second sentence sees no key
    with torch.inference_mode():
        got = torch.ops.tsrunner.attention(query, key, value, mask, None)
        want = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "batch, heads, keys, head_size, mask_kind",
    [(8, 12, 300, 64, "padding"), (2, 4, 129, 48, "float"), (1, 2, 17, 16, "none"),
     (3, 2, 140, 8, "padding")],
)  # fmt: skip
@pytest.mark.parametrize("threads", [1, THREADS])
def test_one_query_row_over_a_cache_window_matches_scaled_dot_product_attention(
    batch, heads, keys, head_size, mask_kind, threads
):
    # A decode step: one query row per sequence against a window of a wider KV cache buffer
    # (strided), left-padded rows masked, more keys than the many-row kernel takes (head size 8
    # runs the portable body).
    generator = torch.Generator().manual_seed(keys)
    query = torch.randn(batch, 1, heads, head_size, generator=generator).transpose(1, 2)
    buffers = torch.randn(2, batch, heads, keys + 7, head_size, generator=generator)
    key, value = buffers[0, :, :, 3 : 3 + keys], buffers[1, :, :, 3 : 3 + keys]
    lengths = torch.randint(1, keys + 1, (batch,), generator=generator)
    lengths[0] = keys
    padding = (torch.arange(keys)[None, :] >= keys - lengths[:, None])[:, None, None, :]
    mask = {
        "none": None,
        "padding": padding,
        "float": torch.randn(batch, 1, 1, keys, generator=generator),
    }[mask_kind]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            got = torch.ops.tsrunner.attention(query, key, value, mask, 0.125)
    finally:
        torch.set_num_threads(previous)
    want = _reference(query, key, value, mask, 0.125)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


def test_attention_op_hands_other_inputs_to_libtorch():
    # Non-float inputs and key/value lengths that differ per head are LibTorch's to run (or to
    # refuse with its own message).
    generator = torch.Generator().manual_seed(1)
    query, key, value = _merged_qkv_views(1, 2, 5, 16, generator)
    with torch.inference_mode():
        got = torch.ops.tsrunner.attention(query.double(), key.double(), value.double(), None, None)
        want = torch.nn.functional.scaled_dot_product_attention(
            query.double(), key.double(), value.double()
        )
        assert torch.equal(got, want)
        with pytest.raises(RuntimeError):
            torch.ops.tsrunner.attention(query, key[:, :1, :3], value, None, None)


def _self_attention_as_graph(qkv, head_shape, starts, width, mask, scale, out_shape):
    # The traced graph's steps, in float64: head views, attention, back to [B, T, H x D].
    qkv = qkv.double()
    query, key, value = (
        qkv[..., start : start + width].reshape(head_shape).transpose(1, 2) for start in starts
    )
    attended = _reference(query, key, value, mask, scale)
    attended = attended.reshape(attended.shape[0], -1, query.shape[2], value.shape[3])
    return attended.transpose(1, 2).contiguous().reshape(out_shape)


@pytest.mark.parametrize(
    "case", ["minilm", "explicit-shapes", "k-first", "strided-qkv", "all-masked-row", "long"]
)
def test_self_attention_op_is_the_graph_it_replaces(case):
    # tsrunner::self_attention reads q/k/v in place and writes [B, T, H x D] directly where the
    # shapes allow ("minilm", "explicit-shapes", "k-first"); otherwise it runs the graph's own
    # steps (a strided GEMM output, a row with no key, more keys than the kernel takes).
    generator = torch.Generator().manual_seed(7)
    batch, length, heads, head_size = 3, 13, 4, 32
    if case == "long":
        batch, length = 1, 130
    width = heads * head_size
    qkv = torch.randn(batch, length, 3 * width, generator=generator)
    if case == "strided-qkv":
        qkv = torch.randn(3 * width, length, batch, generator=generator).permute(2, 1, 0)
    mask = _padding_mask(batch, length, generator)
    if case == "all-masked-row":
        mask[1, :, 4, :] = False
    starts = [width, 0, 2 * width] if case == "k-first" else [0, width, 2 * width]
    head_shape = [batch, length, heads if case == "explicit-shapes" else -1, head_size]
    out_shape = [batch, length, width if case == "explicit-shapes" else -1]
    scale = None if case == "minilm" else 0.2
    with torch.inference_mode():
        got = torch.ops.tsrunner.self_attention(
            qkv, head_shape, *starts, width, mask, scale, out_shape
        )
    want = _self_attention_as_graph(qkv, head_shape, starts, width, mask, scale, out_shape)
    if case == "all-masked-row":  # LibTorch gives such a row zeros; float64 SDPA NaN
        want[1, 4] = 0.0
    assert got.dtype == torch.float32 and got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


def _random_batch(batch, length, generator):
    ids = torch.randint(1000, 20000, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    for row in range(1, batch):
        mask[row, length - row * 2 :] = 0  # shorter sentences, padded
        ids[row, length - row * 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _runner_pair(path, monkeypatch, switch="0"):
    monkeypatch.setenv("TSR_FUSED_ATTENTION", switch)
    plain = tsrunner.Runner(path, threads=THREADS, kernel_path="onednn")
    monkeypatch.delenv("TSR_FUSED_ATTENTION")
    fused = tsrunner.Runner(path, threads=THREADS, kernel_path="onednn")
    return plain, fused


@pytest.fixture(scope="module")
def head32_bert_pt(tiny_bert_dir, tmp_path_factory):
    """A MiniLM-shaped tiny BERT: 2 layers, 2 heads of 32 (the AVX-512 kernel's case)."""
    directory = tmp_path_factory.mktemp("models") / "head32_bert"
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=96, max_position_embeddings=128,
    )  # fmt: skip
    transformers.BertModel(config).eval().save_pretrained(directory)
    for file in tiny_bert_dir.iterdir():  # MiniLM's tokenizer files
        if file.name not in ("config.json", "model.safetensors"):
            shutil.copy(file, directory / file.name)
    path = tmp_path_factory.mktemp("exports") / "head32_bert.pt"
    tsrunner.export(directory, path, max_length=64)
    return path


@pytest.mark.parametrize("switch", ["0", "op"])
@pytest.mark.parametrize("model", ["tiny_bert_pt", "head32_bert_pt"])
def test_runner_with_fused_attention_matches_the_unfused_graph(model, switch, request, monkeypatch):
    # Against LibTorch's attention (TSR_FUSED_ATTENTION=0) and against the op on LibTorch's
    # views (=op): the default also reads the Q/K/V GEMM's output in place.
    path = request.getfixturevalue(model)
    plain, fused = _runner_pair(path, monkeypatch, switch)
    if switch == "0":
        assert "attentions on the short-sequence kernel" not in plain.kernel_path_reason
    else:
        assert "2 attentions on the short-sequence kernel;" in plain.kernel_path_reason
    reason = fused.kernel_path_reason
    assert "2 attentions on the short-sequence kernel (2 reading the Q/K/V" in reason, reason
    generator = torch.Generator().manual_seed(0)
    for batch, length in [(1, 16), (3, 13), (2, 7), (1, 1)]:
        inputs = _random_batch(batch, length, generator)
        inputs = {name: inputs[name] for name in plain.input_names}
        want = plain.run(inputs)
        got = fused.run(inputs)
        for name, tensor in want.items():
            torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-5)
