"""topk_excluding's in-place masking: the same top-k as masking a copy, and never a write into shared memory."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from rankstack.index.topk import topk_excluding

EXCLUDE = sp.csr_matrix(np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))


def _scores() -> torch.Tensor:
    return torch.tensor([[5.0, 1.0, 1.0, 4.0, 0.0], [2.0, 2.0, 9.0, 1.0, 3.0], [0.0, 0.0, 1.0, 0.0, 0.0]])


def test_in_place_masks_the_given_tensor_and_returns_the_same_top_k() -> None:
    copied = topk_excluding(_scores(), 3, EXCLUDE, np.arange(3))
    scores = _scores()
    masked = topk_excluding(scores, 3, EXCLUDE, np.arange(3), in_place=True)
    assert torch.equal(copied[0], masked[0]) and torch.equal(copied[1], masked[1])
    assert torch.equal(masked[1], torch.tensor([[1, 2, 4], [4, 0, 1], [2, 0, 1]]))  # ties: lower id first
    assert torch.isneginf(scores[0, 0]) and torch.isneginf(scores[1, 2])


def test_without_in_place_the_scores_are_left_alone() -> None:
    scores = _scores()
    topk_excluding(scores, 2, EXCLUDE, np.arange(3))
    assert torch.equal(scores, _scores())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_place_never_writes_into_an_expanded_row(dtype: torch.dtype) -> None:
    row = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0], dtype=dtype)
    scores = row.unsqueeze(0).expand(3, -1)  # one row shared by every user, as MostPopular returns
    _, ids = topk_excluding(scores, 2, EXCLUDE, np.arange(3), in_place=True)
    assert torch.equal(row, torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0], dtype=dtype))
    assert torch.equal(ids, torch.tensor([[1, 2], [0, 1], [0, 1]]))
