"""The data-parallel seam: alone every call is the identity, and a block's parallel is in force only inside it."""

from __future__ import annotations

import torch

from rankstack import data_parallel
from rankstack.data_parallel import SINGLE, DataParallel, Step


class Half(DataParallel):
    """Replica ``rank`` of 2 (no processes: only what the loops read)."""

    def __init__(self, rank: int) -> None:
        self.rank, self.world = rank, 2


def test_alone_every_call_is_the_identity() -> None:
    assert data_parallel.current() is SINGLE and not SINGLE.active
    net = torch.nn.Linear(2, 1)
    step = Step(net, lambda x: net(x).sum())
    assert SINGLE.wrap(step) is step
    assert list(step.parameters()) == list(net.parameters())
    batch = torch.arange(5)
    assert torch.equal(SINGLE.part(batch), batch)
    assert SINGLE.any(True) and not SINGLE.any(False)
    assert SINGLE.lead(lambda: 3) == 3 and SINGLE.restore() is None
    SINGLE.checkpoint(1, {}, {"epoch": 1})  # kept nowhere
    assert float(step(torch.ones(1, 2))) == float(net(torch.ones(1, 2)).sum())


def test_replicas_split_a_batch_into_disjoint_parts_that_cover_it() -> None:
    batch = torch.arange(11) * 3
    parts = [Half(r).part(batch) for r in (0, 1)]
    assert sorted(torch.cat(parts).tolist()) == batch.tolist()
    assert abs(len(parts[0]) - len(parts[1])) <= 1


def test_use_sets_the_parallel_in_force_for_the_block_only() -> None:
    replica = Half(1)
    with data_parallel.use(replica) as inside:
        assert inside is replica and data_parallel.current() is replica and replica.active
        with data_parallel.use(SINGLE):
            assert data_parallel.current() is SINGLE
        assert data_parallel.current() is replica
    assert data_parallel.current() is SINGLE
