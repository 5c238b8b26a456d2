"""``summarize``: what a log holds and the split it would get, with its problems listed rather than raised."""

from __future__ import annotations

from pathlib import Path

from rankstack.data.loaders import ReadOptions, read_event_log
from rankstack.data.loaders.log_summary import spread, summarize


def test_spread_of_counts() -> None:
    import numpy as np

    out = spread(np.array([1, 2, 2, 3, 10]))
    assert (out["min"], out["median"], out["max"], out["mean"]) == (1, 2, 10, 3.6)
    assert spread(np.array([], dtype=int)) == {}


def test_summary_counts_time_and_split(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(
        f"u{u},i{i},{86400 * (u + i)}\n" for u in range(4) for i in range(u + 1)))
    s = summarize(read_event_log(path))
    assert (s["users"], s["items"], s["events"]) == (4, 4, 10)
    assert s["events_per_user"]["min"] == 1 and s["events_per_user"]["max"] == 4 and s["users_with_one_event"] == 1
    assert s["time"]["order"] == "time" and s["time"]["first"] == "1970-01-01T00:00:00" and s["time"]["days"] == 6
    assert s["split"]["kind"] == "leave_one_out" and s["split"]["sizes"] == {"train": 6, "validation": 2, "test": 2}
    assert s["problems"] == []


def test_problems_are_listed_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\nu1,a\nu1,b\nu1,a\n")
    s = summarize(read_event_log(path, ReadOptions(), strict=False))
    assert s["read"]["duplicates"] == 1 and s["events"] == 2
    assert s["split"]["kind"] is None and "no timestamp" in s["split"]["error"]
    assert len(s["problems"]) == 2 and "--duplicates drop" in s["problems"][0]
    asked = summarize(read_event_log(path, ReadOptions(duplicates="drop")), requested_split="random")
    assert asked["split"]["kind"] == "random" and asked["problems"] == []
