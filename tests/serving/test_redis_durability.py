"""Redis down when the service starts: the durability warning still appears, once Redis answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from server_process import ServerProcess
from serving_fakes import click, write_fake_artifact

from rankstack.state import RedisStateStore


def test_the_durability_warning_appears_when_redis_comes_up_after_the_service(tmp_path: Path,
                                                                              redis_server: Any) -> None:
    redis_server.kill()
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), redis_server.url, tmp_path / "server.log")
    server.start()
    try:
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert "rankstack_state_store_durable -1.0" in httpx.get(server.url + "/metrics").text
        redis_server.start()
        RedisStateStore(redis_server.url)._client.config_set("appendfsync", "everysec")
        for _ in range(100):  # the breaker pause after the failed start-up check
            if httpx.post(server.url + "/v1/events", json={"events": [click("e1")]}).status_code == 200:
                break
            time.sleep(0.1)
        assert "rankstack_state_store_durable 0.0" in httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert log.count("acknowledged events can be lost on a crash") == 1, log[-2000:]
