"""The Ray processes a command starts get Ray Train's report poll at 0.5 s unless the user set it."""

from __future__ import annotations

import pytest

from rankstack.distributed.cluster import TRAIN_POLL, train_env


def test_ray_train_polls_every_half_second_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRAIN_POLL, raising=False)
    assert train_env() == {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def test_a_poll_interval_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRAIN_POLL, "3")
    assert train_env() == {TRAIN_POLL: "3"}
