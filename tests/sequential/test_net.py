"""The SASRec network's serving path (last position only, masks only where rows are padded)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rankstack.sequential.batches import pad_left
from rankstack.sequential.net import SASRecNet


@pytest.mark.parametrize("blocks", [0, 1, 2, 3])
def test_serving_last_hidden_equals_the_training_forward(blocks: int) -> None:
    torch.manual_seed(blocks)
    # a SASRecConfig refuses 0 blocks: any object with the settings will do
    shape = SimpleNamespace(max_len=12, hidden_dim=16, blocks=blocks, heads=2, dropout=0.3, ffn_mult=1)
    net = SASRecNet(60, shape).eval()
    batches = [[[1, 2, 3]], [[1, 2, 3], [5]], [[]], [[4, 5, 6, 7], []], [list(range(12))], [list(range(30))]]
    for histories in batches:
        seq = pad_left([np.array(h, dtype=np.int64) for h in histories], 12)
        with torch.no_grad():
            torch.testing.assert_close(net.last_hidden(seq), net(seq)[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("heads", "ffn_mult"), [(1, 1), (2, 2), (4, 1)])
def test_serving_path_on_a_mixed_batch_of_eight(heads: int, ffn_mult: int) -> None:
    """A state-cache miss batch as the service runs it (eight histories of different lengths, one fresh item each):
    the functional serving path gives the training forward's last state, and each row alone gives the same."""
    torch.manual_seed(heads)
    rng = np.random.default_rng(heads)
    shape = SimpleNamespace(max_len=20, hidden_dim=16, blocks=2, heads=heads, dropout=0.2, ffn_mult=ffn_mult)
    net = SASRecNet(100, shape).eval()
    histories = [rng.integers(0, 100, n) for n in (1, 3, 7, 19, 20, 25, 5, 12)]
    seq = pad_left(histories, 20)
    with torch.no_grad():
        batch = net.last_hidden(seq)
        torch.testing.assert_close(batch, net(seq)[:, -1], atol=1e-5, rtol=1e-5)
        for row, h in enumerate(histories):
            torch.testing.assert_close(net.last_hidden(pad_left([h], 20))[0], batch[row], atol=1e-5, rtol=1e-5)


def test_the_serving_path_follows_weights_changed_after_its_first_pass() -> None:
    """The serving path keeps its gathered weights between passes: a step of training (in place), a loaded state
    dict (in place), a dtype move (new storage) and a replaced layer (a new tensor) all show in the next pass."""
    torch.manual_seed(0)
    shape = SimpleNamespace(max_len=10, hidden_dim=16, blocks=2, heads=2, dropout=0.0, ffn_mult=1)
    net = SASRecNet(50, shape)
    seq = pad_left([np.array([3, 1, 4, 1, 5, 9], dtype=np.int64), np.array([2, 7], dtype=np.int64)], 10)

    def agrees() -> torch.Tensor:
        net.eval()
        with torch.no_grad():
            served = net.last_hidden(seq)
            torch.testing.assert_close(served, net(seq)[:, -1], atol=1e-5, rtol=1e-5)
        return served

    before = agrees()
    net.train()
    torch.optim.SGD(net.parameters(), lr=0.5).zero_grad()
    net(seq).pow(2).sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.5).step()
    stepped = agrees()
    assert not torch.allclose(stepped, before)
    other = SASRecNet(50, shape)
    net.load_state_dict(other.state_dict())
    torch.testing.assert_close(agrees(), other.eval().last_hidden(seq), atol=1e-5, rtol=1e-5)
    net.double()
    assert agrees().dtype == torch.float64
    net.float()
    block = net.blocks[0]
    block.qkv = torch.nn.Linear(16, 48)
    agrees()
