"""The sequential REINFORCE heads: the top-K corrected weight by hand, the saved files' round trip."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rankstack.bandits.reinforce_seq import SeqReinforceConfig, SeqReinforcePolicy, SoftmaxHead, topk_weights


def test_topk_weight_and_capping_follow_the_formula() -> None:
    pi, beta = torch.tensor([0.1, 0.5, 0.02]), torch.tensor([0.2, 0.1, 0.01])
    weight, capped = topk_weights(pi, beta, top_k=3, cap=2.0)
    # min(π/β, c)·K(1 − π)^{K−1}: 0.5·3·0.9², capped 2·3·0.5², exactly at the cap 2·3·0.98² (not a hit)
    torch.testing.assert_close(weight, torch.tensor([0.5 * 3 * 0.81, 2.0 * 3 * 0.25, 2.0 * 3 * 0.98**2]))
    assert capped.tolist() == [False, True, False]
    one, _ = topk_weights(pi, beta, top_k=1, cap=100.0)
    torch.testing.assert_close(one, pi / beta)  # K = 1: the plain importance weight


def test_heads_score_the_catalogue_pairs_and_shared_items_consistently() -> None:
    head = SoftmaxHead(torch.randn(7, 3), warm_start=True)
    with torch.no_grad():
        head.bias.copy_(torch.arange(7.0))
    states = torch.randn(4, 3)
    full = head(states)
    torch.testing.assert_close(full, states @ head.items.T + head.bias)  # W = I at the start
    items = torch.tensor([6, 0, 3, 3])
    torch.testing.assert_close(head.pair_logits(states, items), full[torch.arange(4), items])
    torch.testing.assert_close(head.shared_logits(states, torch.tensor([2, 5])), full[:, [2, 5]])
    assert float(SoftmaxHead(torch.randn(7, 3), warm_start=False).proj.detach().abs().sum()) == 0.0


def _policy(behaviour: bool) -> SeqReinforcePolicy:
    torch.manual_seed(0)
    items = torch.randn(9, 5)
    heads = [SoftmaxHead(items) for _ in range(2)]
    for head in heads:
        with torch.no_grad():
            head.proj.add_(torch.randn(5, 5))
            head.bias.copy_(torch.randn(9))
    return SeqReinforcePolicy(heads[0], heads[1] if behaviour else None, SeqReinforceConfig(top_k=4, negatives=3),
                              {"rows": 12})


@pytest.mark.parametrize("behaviour", [True, False])
def test_save_and_load_give_identical_logits(tmp_path: Path, behaviour: bool) -> None:
    policy = _policy(behaviour)
    loaded = SeqReinforcePolicy.load(policy.save(tmp_path / "policy"))
    states = torch.randn(6, 5)
    assert torch.equal(loaded.logits(states), policy.logits(states))
    assert loaded.config == policy.config and loaded.report_ == {"rows": 12} and loaded.n_items == 9
    if behaviour:
        assert torch.equal(loaded.behaviour_probs(states), policy.behaviour_probs(states))
    else:
        with pytest.raises(ValueError, match="no behaviour head"):
            loaded.behaviour_probs(states)
    assert sorted(p.name for p in (tmp_path / "policy").iterdir()) == ["policy.json", "policy.safetensors"]
    np.testing.assert_allclose(loaded.probs(states).sum(1).numpy(), 1.0, rtol=1e-5)


def test_load_rejects_another_format(tmp_path: Path) -> None:
    folder = _policy(False).save(tmp_path / "p")
    meta = json.loads((folder / "policy.json").read_text())
    (folder / "policy.json").write_text(json.dumps(meta | {"format": "other/1"}))
    with pytest.raises(ValueError, match=r"format must be 'rankstack\.reinforce_seq/1'"):
        SeqReinforcePolicy.load(folder)


@pytest.mark.parametrize(("setting", "value"), [("top_k", 0), ("cap", 0.0), ("negatives", 0), ("validation", 1.0),
                                                ("proposal", "zipf"), ("unknown", 1)])
def test_config_rejects_bad_settings(setting: str, value: object) -> None:
    with pytest.raises(ValueError, match=setting):
        SeqReinforceConfig.model_validate({setting: value})
