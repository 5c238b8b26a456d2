"""Service settings: defaults, the admin token from the environment, and bad values refused with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rankstack.errors import ConfigError
from rankstack.serving.settings import ADMIN_TOKEN_ENV, ServiceSettings


def test_defaults_serve_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    settings = ServiceSettings.from_env(Path("art"))
    assert settings.workers == 1 and settings.admin_token is None
    assert settings.shed and settings.max_queue == 1_000 and settings.max_connections is None


def test_workers_and_the_token_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "t" * 16)
    settings = ServiceSettings.from_env(Path("art"), workers=4)
    assert settings.workers == 4 and settings.admin_token == "t" * 16
    assert ServiceSettings.model_validate_json(settings.model_dump_json()) == settings  # as workers receive them


BAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"workers": 0}, "workers"),
    ({"workers": -2}, "workers"),
    ({"workers": "two"}, "workers"),
    ({"max_batch": 0}, "max_batch"),
    ({"deadline_s": 0}, "deadline_s"),
    ({"colour": "red"}, "colour"),
    ({"max_queue": 0}, "max_queue"),
    ({"max_connections": 0}, "max_connections"),
    ({"backlog": 0}, "backlog"),
    ({"shed": "sometimes"}, "shed"),
    ({"inline_batch_ms": -1}, "inline_batch_ms"),
    ({"inline_batch_ms": "fast"}, "inline_batch_ms"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_SETTINGS)
def test_bad_settings_are_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any],
                                                   field: str) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"invalid service settings.*{field}"):
        ServiceSettings.from_env(Path("art"), **overrides)


def test_a_short_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "short")
    with pytest.raises(ConfigError, match=f"{ADMIN_TOKEN_ENV} feeds admin_token.*admin_token"):
        ServiceSettings.from_env(Path("art"))
