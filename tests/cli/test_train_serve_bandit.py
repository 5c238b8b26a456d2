"""``rankstack train`` on a YAML pipeline whose exploration stage is a learning policy (the shipped
``bandit-linucb.yaml``, shrunk to a tiny log), then the service on that artifact: events move the policy's state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore

REPO = Path(__file__).resolve().parents[2]


def _train_tiny(config: dict[str, Any], tmp_path: Path) -> None:
    """``rankstack train`` the shipped ``config`` shrunk to a tiny planted log → ``tmp_path/art``."""
    lines = ["user_id,item_id,timestamp"]
    for u in range(40):
        for t in range(8):
            lines.append(f"u{u},i{(u % 4) + 4 * ((u + 3 * t) % 8)},{1_700_000_000 + 60 * t}")
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config["data"] = {"name": str(tmp_path / "events.csv")}
    config["sources"] = [{"name": "popular", "k": 20, "quota": 5}, {"name": "itemknn", "k": 20}]
    config["merge"] = {"k": 25}
    config["exploration"]["pool"] = 10
    config["exploration"]["learning"].update({"dim": 4, "sync_every_s": 0.05})
    config["evaluation"] = {"ks": [5], "funnel_ks": [10]}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "pipeline.yaml"), "-o", str(tmp_path / "art"),
                                      "--no-register", "--json"])
    assert result.exit_code == 0, result.output


def test_train_then_serve_a_learning_policy_from_yaml(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "pipelines" / "bandit-linucb.yaml").read_text(encoding="utf-8"))
    assert config["exploration"]["policy"] == "linucb"
    config["ranker"] = None
    _train_tiny(config, tmp_path)
    assert (tmp_path / "art" / "policy" / "features.safetensors").is_file()

    store = SQLiteStateStore(tmp_path / "state.db")
    with TestClient(create_app(Pipeline.load, store, ServiceSettings(artifact=tmp_path / "art"))) as http:
        before = http.get("/v1/policy").json()
        slate = http.post("/v1/recommend", json={"user_id": "u1", "k": 3, "request_id": "r1"}).json()
        assert all(0 < item["propensity"] <= 1 for item in slate["items"])
        events = [{"event_id": f"e{n}-{kind}", "user_id": "u1", "item_id": item["item_id"], "event": kind,
                   "request_id": "r1"} for n, item in enumerate(slate["items"]) for kind in ("impression", "click")]
        assert http.post("/v1/events", json={"events": events}).json()["new"] == 6
        deadline = time.monotonic() + 10
        while http.get("/v1/policy").json()["events"] < 6:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = http.get("/v1/policy").json()
    assert after["policy"] == "linucb" and after["digest"] != before["digest"]
    assert after["impressions"] == 3 and after["rewards"] == 3
    store.close()


def test_train_then_serve_neural_linear_over_sasrec_from_yaml(tmp_path: Path) -> None:
    """The shipped ``bandit-neural-linear.yaml`` with a tiny SASRec: the artifact's policy features are SASRec's
    projected vectors, and the service answers a request with NeuralLinear's propensities."""
    path = REPO / "configs" / "pipelines" / "bandit-neural-linear.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["exploration"]["policy"] == "neural_linear"
    assert config["exploration"]["learning"]["representation"] == config["ranker"]["source"] == "sasrec"
    config["ranker"]["settings"].update({"epochs": 2, "hidden_dim": 16, "max_len": 10, "blocks": 1,
                                         "validation": False, "batch_size": 64})
    _train_tiny(config, tmp_path)

    loaded = Pipeline.load(tmp_path / "art")
    assert loaded.parts.policy is not None and loaded.parts.policy.items.shape[1] == 4
    assert loaded.parts.ranker is not None
    store = SQLiteStateStore(tmp_path / "state.db")
    with TestClient(create_app(Pipeline.load, store, ServiceSettings(artifact=tmp_path / "art"))) as http:
        assert http.get("/v1/policy").json()["policy"] == "neural_linear"
        slate = http.post("/v1/recommend", json={"user_id": "u1", "k": 3, "request_id": "r1"}).json()
    assert len(slate["items"]) == 3 and all(0 < item["propensity"] <= 1 for item in slate["items"])
    store.close()
