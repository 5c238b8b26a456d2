"""Sequential top-K REINFORCE training: sampled softmax vs full, the off-policy correction on a biased log (Chen et
al., WSDM 2019, Sec. 6.1 pattern), the learned behaviour head, the report."""

import math

import numpy as np
import pytest
import torch

from rankstack.bandits.reinforce_seq import SeqReinforceConfig, SoftmaxHead
from rankstack.bandits.reinforce_seq_train import (
    LoggedRows,
    full_probs_of,
    log_proposal,
    rows_from_arrays,
    sampled_log_prob,
    train_seq_reinforce,
)

N_ITEMS, DIM = 10, 4
REWARD = np.arange(1, N_ITEMS + 1) / N_ITEMS  # r(a_i) = i / 10: the last item is the best
BEHAVIOUR = (N_ITEMS + 1 - np.arange(1, N_ITEMS + 1)) / 55  # β prefers the worst items


def _head(seed: int = 0, n_items: int = N_ITEMS) -> SoftmaxHead:
    gen = torch.Generator().manual_seed(seed)
    head = SoftmaxHead(torch.randn(n_items, DIM, generator=gen), warm_start=True)
    with torch.no_grad():
        head.proj.add_(0.3 * torch.randn(DIM, DIM, generator=gen))
        head.bias.copy_(torch.randn(n_items, generator=gen))
    return head


def test_sampled_softmax_is_the_full_softmax_when_negatives_cover_the_catalogue() -> None:
    head = _head()
    states, targets = torch.randn(6, DIM, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 9, 1, 1, 5])
    full = torch.log_softmax(head(states), -1).gather(1, targets[:, None])[:, 0]
    uniform = torch.full((N_ITEMS,), -math.log(N_ITEMS))
    torch.testing.assert_close(sampled_log_prob(head, states, targets, torch.arange(N_ITEMS), uniform), full)


def test_sampled_softmax_gradient_approaches_the_full_gradient_as_negatives_grow() -> None:
    # sampled softmax is a ratio estimate, so its gradient is biased for small m; the bias must vanish with m
    n_items = 200
    head = _head(2, n_items)
    states = torch.randn(32, DIM, generator=torch.Generator().manual_seed(3))
    targets = torch.randint(n_items, (32,), generator=torch.Generator().manual_seed(4))
    full_loss = -torch.log_softmax(head(states), -1).gather(1, targets[:, None]).mean()
    full = torch.autograd.grad(full_loss, head.bias)[0]
    uniform = torch.full((n_items,), -math.log(n_items))
    errors = []
    for m in (10, 50, 800):
        gen, acc, draws = torch.Generator().manual_seed(5), torch.zeros(n_items), 200
        for _ in range(draws):
            negatives = torch.randint(n_items, (m,), generator=gen)
            loss = -sampled_log_prob(head, states, targets, negatives, uniform).mean()
            acc += torch.autograd.grad(loss, head.bias)[0]
        errors.append(float((acc / draws - full).norm() / full.norm()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.1, errors


@pytest.mark.parametrize("proposal", ["uniform", "popularity"])
def test_log_proposal_is_a_distribution(proposal: str) -> None:
    config = SeqReinforceConfig(proposal=proposal)  # type: ignore[arg-type]
    q = log_proposal(config, torch.tensor([0, 0, 0, 2]), 4).exp()
    assert float(q.sum()) == pytest.approx(1.0)
    assert (q > 0).all() and (proposal == "uniform" or float(q[0]) > float(q[1]))


def _biased_log(n: int = 20_000, propensity: bool = True) -> tuple[LoggedRows, torch.Tensor]:
    """Context-free states (one shared vector), actions from β, rewards r(a) as Bernoulli draws."""
    rng = np.random.default_rng(0)
    actions = rng.choice(N_ITEMS, n, p=BEHAVIOUR)
    rewards = (rng.random(n) < REWARD[actions]).astype(np.float64)
    items = torch.randn(N_ITEMS, DIM, generator=torch.Generator().manual_seed(0))
    rows = rows_from_arrays(np.ones((n, DIM)), actions, rewards, BEHAVIOUR[actions] if propensity else None)
    return rows, items


def _final_policy(rows: LoggedRows, items: torch.Tensor, **kw: object) -> np.ndarray:
    config = SeqReinforceConfig.model_validate({"epochs": 15, "batch_size": 500, "lr": 0.05, "warm_start": False,
                                                "validation": 0.1, **kw})
    policy = train_seq_reinforce(rows, items, config)
    return policy.probs(torch.ones(1, DIM))[0].numpy()


def test_without_correction_the_policy_stays_near_the_logging_preference() -> None:
    pi = _final_policy(*_biased_log(), correction=False)
    # REINFORCE on the log alone converges to π ∝ β·r, which peaks at items 5 and 6, not at the best item
    assert np.argmax(pi) in (4, 5) and pi[-1] < 0.15
    np.testing.assert_allclose(pi, BEHAVIOUR * REWARD / (BEHAVIOUR * REWARD).sum(), atol=0.05)


@pytest.mark.parametrize(("propensity", "negatives"), [(True, None), (False, None), (True, 4)],
                         ids=["logged beta", "learned beta", "sampled softmax"])
def test_with_the_correction_the_policy_moves_to_the_rewarded_item(propensity: bool, negatives: int | None) -> None:
    pi = _final_policy(*_biased_log(propensity=propensity), cap=1e4, negatives=negatives)
    assert np.argmax(pi) == N_ITEMS - 1 and pi[-1] > 0.5


def test_the_behaviour_head_recovers_state_dependent_propensities() -> None:
    rng = np.random.default_rng(1)
    n, items = 20_000, torch.randn(N_ITEMS, DIM, generator=torch.Generator().manual_seed(1))
    states = rng.normal(size=(n, DIM))
    true_w = np.diag([1.5, -1.0, 0.5, 1.0])
    logits = states @ true_w @ items.numpy().T
    beta = np.exp(logits - logits.max(1, keepdims=True))
    beta /= beta.sum(1, keepdims=True)
    actions = np.array([rng.choice(N_ITEMS, p=p) for p in beta])
    rows = rows_from_arrays(states, actions, np.zeros(n), None)
    policy = train_seq_reinforce(rows, items, SeqReinforceConfig(epochs=1, behaviour_epochs=15, lr=0.05,
                                                                 batch_size=500))
    test_states = torch.as_tensor(rng.normal(size=(500, DIM)), dtype=torch.float32)
    learned = policy.behaviour_probs(test_states).numpy()
    truth = np.exp(test_states.numpy() @ true_w @ items.numpy().T)
    truth /= truth.sum(1, keepdims=True)
    assert np.abs(learned - truth).sum(1).mean() < 0.1  # mean total-variation distance ×2
    assert policy.report_["behaviour_learned"] is True and policy.report_["share_with_propensity"] == 0.0


def test_report_counts_rows_propensities_and_cap_hits() -> None:
    rows, items = _biased_log(2_000)
    half = rows.propensity.clone()
    half[::2] = float("nan")
    rows = LoggedRows(rows.states, rows.items, rows.rewards, half)
    report = train_seq_reinforce(rows, items, SeqReinforceConfig(epochs=2, cap=0.05, validation=0.25)).report_
    assert report["rows"] == 2_000 and report["rows_validation"] == 500
    assert report["share_with_propensity"] == pytest.approx(0.5)
    # a cap of 0.05 is below π/β for nearly every row: most weights are capped
    val = report["validation"]
    assert isinstance(val, dict) and 0 < val["snips"] < 1
    assert isinstance(report["cap_hits_last_epoch"], int) and report["cap_hits_last_epoch"] > 0


def test_full_probs_of_match_the_softmax() -> None:
    head = _head()
    states, items = torch.randn(5, DIM), torch.tensor([0, 1, 2, 3, 4])
    torch.testing.assert_close(full_probs_of(head, states, items), torch.softmax(head(states), -1)[range(5), items])


@pytest.mark.parametrize(("field", "value", "message"), [
    ("items", torch.zeros(3, dtype=torch.int64), "LoggedRows.items"),
    ("rewards", torch.zeros(4, 1), "LoggedRows.rewards"),
    ("propensity", torch.tensor([0.5, 0.0, 0.5, 0.5]), "LoggedRows.propensity"),
    ("propensity", torch.tensor([0.5, 1.5, 0.5, 0.5]), "LoggedRows.propensity"),
])
def test_bad_rows_are_rejected_naming_the_field(field: str, value: torch.Tensor, message: str) -> None:
    parts = {"states": torch.zeros(4, DIM), "items": torch.zeros(4, dtype=torch.int64), "rewards": torch.zeros(4),
             "propensity": torch.full((4,), float("nan"))}
    parts[field] = value
    with pytest.raises(ValueError, match=message):
        LoggedRows(**parts)
