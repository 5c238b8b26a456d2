"""``rankstack bandits reinforce`` end to end: a SASRec pipeline served in-process with ε-greedy exploration, the
client posting impressions with the returned propensities and simulated clicks, the policy trained from the store."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rankstack.bandits.reinforce_seq import SeqReinforcePolicy
from rankstack.cli import app
from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.experiments.reinforce_log import read_service_rows
from rankstack.experiments.reinforce_run import distinct_states, find_sasrec
from rankstack.ope.service_log import read_service_events
from rankstack.pipeline.artifact import load_artifact, save_artifact
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore

USERS, REPEATS, K = 10, 6, 3
EXPLORE = {"policy": "epsilon_greedy", "epsilon": 0.5, "pool": 8, "seed": 3}


def _history() -> Dataset:
    rng = np.random.default_rng(2)
    rows = [(f"user{u}", f"item{i}", 1_750_000_000 + 60 * t)
            for u in range(USERS) for t, i in enumerate(rng.choice(range(u % 3, 24, 3), size=6, replace=False))]
    return Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
                               name="history")


def _artifact(folder: Path, ranker: bool) -> Path:
    config = {"name": "h", "data": {"name": "history"}, "sources": [{"name": "popular", "k": 12}],
              "merge": {"k": 12}, "exploration": EXPLORE, "evaluation": {"ks": [3], "funnel_ks": [12]},
              "deadlines_ms": {"retrieval": 30_000, "ranker": 30_000, "rerank": 30_000}}
    if ranker:
        config["ranker"] = {"source": "sasrec", "history": 8,
                            "settings": {"epochs": 2, "max_len": 8, "hidden_dim": 8, "validation": False}}
    cfg = validate_pipeline_config(config)
    parts = fit_stages(cfg, _history(), lambda _m: None)
    manifest = {"version": folder.name, "name": "h", "created_at": "2026-01-01T00:00:00+00:00",
                "config": cfg.model_dump(mode="json"), "data": {"name": "history"}, "metrics": {"pipeline": {}}}
    return save_artifact(parts, manifest, folder)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, int]:
    """(artifact, state store, impressions posted, clicks posted)."""
    root = tmp_path_factory.mktemp("served")
    artifact = _artifact(root / "seq-0001", ranker=True)
    store = SQLiteStateStore(root / "state.db")
    rng = np.random.default_rng(0)
    events: list[dict[str, object]] = []
    with TestClient(create_app(Pipeline.load, store, ServiceSettings(artifact=artifact, deadline_s=30.0))) as client:
        for j in range(REPEATS):
            for u in range(USERS):
                rid = f"u{u}-{j}"
                body = client.post("/v1/recommend", json={"user_id": f"user{u}", "k": K, "request_id": rid}).json()
                batch = []
                for slot, it in enumerate(body["items"]):
                    batch.append({"event_id": f"{rid}-i{slot}", "user_id": f"user{u}", "item_id": it["item_id"],
                                  "event": "impression", "request_id": rid, "propensity": it["propensity"]})
                    if rng.random() < (0.6 if int(it["item_id"][4:]) % 2 else 0.1):  # odd items click often
                        batch.append({"event_id": f"{rid}-c{slot}", "user_id": f"user{u}",
                                      "item_id": it["item_id"], "event": "click", "request_id": rid})
                assert client.post("/v1/events", json={"events": batch}).status_code == 200
                events += batch
    store.close()
    kinds = [e["event"] for e in events]
    return artifact, root / "state.db", kinds.count("impression"), kinds.count("click")


def test_the_reader_gives_one_row_per_served_impression(served: tuple[Path, Path, int, int]) -> None:
    artifact, db, impressions, clicks = served
    parts = load_artifact(artifact)
    rows = read_service_rows(db, user_map=parts.user_map, item_map=parts.item_map, train_histories=parts.histories,
                             max_len=8)
    assert len(rows.items) == impressions == USERS * REPEATS * K and int(rows.rewards.sum()) == clicks
    assert ((rows.propensity > 0) & (rows.propensity <= 1)).all()
    first = rows.users.index("user0")
    user0 = int(parts.user_map.to_internal(["user0"])[0])
    assert rows.histories[first].tolist() == parts.histories[user0][-8:].tolist()  # no clicks before the first
    later = len(rows.users) - 1 - rows.users[::-1].index("user0")
    assert len(rows.histories[later]) == 8  # the training history plus fresh clicks, truncated to max_len


def test_cli_trains_saves_and_reports(served: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    artifact, db, impressions, _ = served
    out = tmp_path / "policy"
    result = CliRunner().invoke(app, ["bandits", "reinforce", "--artifact", str(artifact), "--state", f"sqlite:{db}",
                                      "-o", str(out), "--top-k", "3", "--negatives", "5", "--epochs", "3",
                                      "--validation", "0.2", "--json"], env={"RANKSTACK_QUIET": "1"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == impressions and report["share_with_propensity"] == 1.0
    assert report["behaviour_learned"] is False and report["reader"]["unknown_items"] == 0
    assert report["rows_validation"] == round(0.2 * impressions)
    assert set(report["validation"]) == {"capped_ips", "snips"} and "cap_hits_last_epoch" in report
    policy = SeqReinforcePolicy.load(out)
    sasrec = find_sasrec(load_artifact(artifact))
    assert policy.config.top_k == 3 and policy.config.negatives == 5 and policy.n_items == sasrec.n_items_
    assert torch.equal(policy.policy_.items, sasrec.item_vectors())


def test_the_same_log_as_an_event_file_gives_the_same_rows(served: tuple[Path, Path, int, int],
                                                           tmp_path: Path) -> None:
    artifact, db, impressions, _ = served
    events = read_service_events(db).select("user_id", "item_id", "ts", "event", "request_id", "propensity")
    events.rename({"ts": "timestamp"}).write_parquet(tmp_path / "events.parquet")
    args = ["bandits", "reinforce", "--artifact", str(artifact), "--epochs", "1", "--json", "-o"]
    from_file = CliRunner().invoke(app, [*args, str(tmp_path / "a"), "--log", str(tmp_path / "events.parquet")],
                                   env={"RANKSTACK_QUIET": "1"})
    from_store = CliRunner().invoke(app, [*args, str(tmp_path / "b"), "--state", f"sqlite:{db}"],
                                    env={"RANKSTACK_QUIET": "1"})
    assert from_file.exit_code == 0, from_file.output
    one, two = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (from_file, from_store))
    assert one["reader"] == two["reader"] and one["reader"]["rows"] == impressions
    assert one["validation"] == two["validation"]  # the same rows, states and seed: the same policy


@pytest.mark.parametrize("sources", [[], ["--state", "sqlite:x.db", "--log", "x.parquet"]], ids=["none", "both"])
def test_exactly_one_log_is_required(tmp_path: Path, sources: list[str]) -> None:
    result = CliRunner().invoke(app, ["bandits", "reinforce", "--artifact", str(tmp_path), "-o", str(tmp_path / "p"),
                                      *sources])
    assert result.exit_code == 2 and "exactly one of --state" in result.output


def test_an_artifact_without_sasrec_is_one_line_exit_2(tmp_path: Path, served: tuple[Path, Path, int, int]) -> None:
    artifact = _artifact(tmp_path / "pop-0001", ranker=False)
    result = CliRunner().invoke(app, ["bandits", "reinforce", "--artifact", str(artifact), "--state",
                                      f"sqlite:{served[1]}", "-o", str(tmp_path / "p")])
    assert result.exit_code == 2 and "no SASRec" in result.output


@pytest.mark.parametrize(("args", "message"), [(["--top-k", "0"], "--top-k"), (["--reward", "view"], "--reward"),
                                               (["--proposal", "zipf"], "--proposal"), (["--cap", "-1"], "--cap")])
def test_bad_options_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bandits", "reinforce", "--artifact", str(tmp_path), "--state",
                                      "sqlite:x.db", "-o", str(tmp_path / "p"), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_distinct_states_match_one_state_per_row(served: tuple[Path, Path, int, int]) -> None:
    sasrec = find_sasrec(load_artifact(served[0]))
    histories = [np.array([1, 2], dtype=np.int64), np.array([3], dtype=np.int64), np.array([1, 2], dtype=np.int64),
                 np.zeros(0, np.int64)]
    np.testing.assert_allclose(distinct_states(sasrec, histories), sasrec.user_states(histories).numpy(), atol=1e-6)
