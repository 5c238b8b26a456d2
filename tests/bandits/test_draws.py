"""Per-request draws: the same request gets the same draws anywhere, and first draws are uniform."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rankstack.bandits.draws import request_rng


@given(st.integers(0, 2**31), st.text(max_size=20), st.text(min_size=1, max_size=20))
def test_request_draws_repeat_for_the_same_request(seed: int, request_id: str, user_id: str) -> None:
    a, b = request_rng(seed, request_id, user_id), request_rng(seed, request_id, user_id)
    draws = [a.random(), a.random(), float(a.generator().random())]
    assert draws == [b.random(), b.random(), float(b.generator().random())]
    assert all(0.0 <= d < 1.0 for d in draws)


def test_first_draws_are_uniform_across_requests() -> None:
    first = np.array([request_rng(0, f"r{i}", "u").random() for i in range(20_000)])
    assert abs(first.mean() - 0.5) < 0.01 and abs((first < 0.05).mean() - 0.05) < 0.006
    assert len(np.unique(first)) == len(first)
