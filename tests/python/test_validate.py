"""Validation compares what a model means: outputs at padding the mask hides are not judged."""

from __future__ import annotations

import torch

from tsrunner.validate import compare

MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])


def _model(offset_at: tuple[int, int] | None):
    """Token vectors [2, 4, 3] and a pooled vector [2, 3]; `offset_at` moves one token's vector."""

    def forward(ids: torch.Tensor):
        hidden = torch.arange(24, dtype=torch.float32).view(2, 4, 3) + ids[..., None]
        if offset_at is not None:
            hidden = hidden.clone()
            hidden[offset_at] += 0.5
        return hidden, hidden[:, 0]

    return forward


def test_a_difference_at_masked_padding_is_not_counted():
    ids = torch.zeros(2, 4)
    differences = compare(_model(None), _model((1, 3)), (ids,), ["hidden", "pooled"], MASK)
    assert differences == {"hidden": 0.0, "pooled": 0.0}
    unmasked = compare(_model(None), _model((1, 3)), (ids,), ["hidden", "pooled"])
    assert unmasked["hidden"] == 0.5


def test_a_difference_at_a_real_token_is_counted():
    ids = torch.zeros(2, 4)
    differences = compare(_model(None), _model((1, 1)), (ids,), ["hidden", "pooled"], MASK)
    assert differences["hidden"] == 0.5


def test_outputs_not_laid_out_by_token_are_compared_whole():
    ids = torch.zeros(2, 4)
    differences = compare(_model(None), _model((0, 0)), (ids,), ["hidden", "pooled"], MASK)
    assert differences == {"hidden": 0.5, "pooled": 0.5}
