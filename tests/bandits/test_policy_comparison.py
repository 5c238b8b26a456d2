"""The same-stream comparison: one stream for every policy, learning beats uniform, clear errors."""

import numpy as np
import pytest

from rankstack.bandits.policy_comparison import check_names, compare, make_stream, run_policy, train_reinforce


def test_every_policy_sees_the_same_stream_and_learning_beats_uniform() -> None:
    report = compare(["uniform", "neural_linear"], 1000, 3, batch=500)
    rows = report["policies"]
    assert isinstance(rows, dict)
    for row in rows.values():
        assert 0 < row["ctr"] < 1 and row["regret"] > 0 and row["revenue_per_1000"] > 0
    assert rows["neural_linear"]["expected_ctr"] > 1.2 * rows["uniform"]["expected_ctr"]


def test_reinforce_topk_trains_on_a_uniform_log_and_beats_uniform() -> None:
    stream = make_stream(1000, 2)
    policy = train_reinforce(stream, 2, log_rounds=5000)
    ours = run_policy(stream, policy, 2, 500)["expected_ctr"]
    from rankstack.bandits.policy_comparison import builders
    uniform = run_policy(stream, builders(500, 21, 17, 0)["uniform"](), 2, 500)["expected_ctr"]
    assert ours > 1.5 * uniform
    a, b = make_stream(100, 3), make_stream(100, 3)
    np.testing.assert_array_equal(a.click_u, b.click_u)
    np.testing.assert_array_equal(a.requests.users, b.requests.users)


def test_the_uniform_run_repeats_exactly() -> None:
    stream = make_stream(400, 1)
    from rankstack.bandits.policy_comparison import builders
    make = builders(500, stream.context.rounds.shape[1], stream.context.arms.shape[1], 0)
    assert run_policy(stream, make["uniform"](), 1, 200)["ctr"] == run_policy(stream, make["uniform"](), 1, 200)["ctr"]


@pytest.mark.parametrize(("names", "message"), [
    (["uniform", "nope"], "unknown policy 'nope'"),
    ([], "no policies"),
])
def test_bad_names_are_named(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_names(names)


def test_the_new_policies_run_on_the_stream_and_learn() -> None:
    from rankstack.bandits.policy_comparison import build_policy

    stream = make_stream(2000, 3, n_users=500, n_items=50)
    rows = {name: run_policy(stream, build_policy(name, stream, 3), 3, 250)
            for name in ("uniform", "linucb_hybrid", "neural_linear_learned")}
    for name in ("linucb_hybrid", "neural_linear_learned"):
        assert rows[name]["expected_ctr"] > 1.2 * rows["uniform"]["expected_ctr"]


def test_vw_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vowpalwabbit" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'rankstack\[peers\]'"):
        check_names(["uniform", "vw_squarecb"])


def test_vw_runs_beside_ours_on_the_same_stream() -> None:
    pytest.importorskip("vowpalwabbit", reason="the peers extra (vowpalwabbit) is not installed")
    from rankstack.bandits.policy_comparison import build_policy

    stream = make_stream(300, 4, n_users=300, n_items=40)
    row = run_policy(stream, build_policy("vw_squarecb", stream, 4), 4, 100)
    assert 0 < row["expected_ctr"] < 1 and row["regret"] > 0
