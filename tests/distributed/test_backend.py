"""Backend options: bad combinations are ConfigErrors naming the option; Ray is needed only for --backend ray."""

from __future__ import annotations

import pytest

from rankstack.distributed import backend as backend_module
from rankstack.distributed.backend import Backend
from rankstack.errors import ConfigError


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "spark"}, "--backend must be 'local' or 'ray'"),
    ({"kind": "ray", "workers": 0}, "--workers must be an integer >= 1"),
    ({"kind": "ray", "workers": True}, "--workers must be an integer >= 1"),
    ({"kind": "local", "workers": 2}, "--workers counts Ray workers, so it needs --backend ray"),
    ({"kind": "local", "address": "ray://head:10001"}, "--address names a Ray cluster"),
    ({"kind": "ray", "address": "  "}, "--address is empty"),
])
def test_bad_backends_name_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Backend(**kwargs)


def test_local_is_the_default_and_needs_no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "ray_installed", lambda: False)
    assert Backend().require().to_json() == {"backend": "local", "workers": 1, "address": None}
    assert not Backend().is_ray


def test_ray_without_ray_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "ray_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'rankstack\[ray\]'"):
        Backend("ray", 2).require()
