"""Named loaders on the shared datasets (skipped when absent), bundled ml-latest-small, generic logs."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import (
    REGISTRY,
    find_dataset,
    list_datasets,
    load_dataset,
    load_event_log,
)
from rankstack.data.schema import EventSchema
from rankstack.errors import DatasetNotFoundError, DataValidationError
from rankstack.paths import BUNDLED_DIR

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BUNDLED_ML = BUNDLED_DIR / "ml-latest-small"

# name: (users, items, events)
EXPECTED = {
    "ml-latest-small": (610, 9_724, 100_836),
    "movielens-100k": (943, 1_682, 100_000),
    "movielens-1m": (6_040, 3_416, 999_611),
    "gowalla": (29_858, 40_981, 810_128 + 217_242),
    "beauty": (40_226, 54_542, 353_962),
    "open-bandit": (240, 80, 10_000 + 38),
    "open-bandit-bts": (253, 80, 10_000 + 42),
}
_CACHE: dict[str, Dataset] = {}


def shared(name: str) -> Dataset:
    """Load ``name`` from ../shared/data once per session, or skip with the reason."""
    if name not in _CACHE:
        try:
            root = find_dataset(name, SHARED if SHARED.is_dir() else None)
        except DatasetNotFoundError as exc:
            pytest.skip(f"shared dataset {name!r} not present: {exc}")
        if root.is_relative_to(BUNDLED_DIR) and name == "ml-latest-small":
            pytest.skip("only the bundled copy of ml-latest-small is present")
        _CACHE[name] = REGISTRY[name].loader(root)
    return _CACHE[name]


@pytest.fixture(scope="module")
def bundled() -> Dataset:
    """The ml-latest-small copy shipped inside the package (always present)."""
    return REGISTRY["ml-latest-small"].loader(BUNDLED_ML)


def test_bundled_ml_latest_small_counts_and_dtypes(bundled: Dataset) -> None:
    assert (bundled.n_users, bundled.n_items, len(bundled)) == (610, 9_724, 100_836)
    ev = bundled.events
    assert ev.schema["user_id"] == pl.Int64 and ev.schema["item_id"] == pl.Int64
    assert ev.schema["timestamp"] == pl.Datetime("us") and ev.get_column("timestamp").null_count() == 0
    assert ev.get_column("event").unique().to_list() == ["rating"]
    assert ev.get_column("value").min() == 0.5 and ev.get_column("value").max() == 5.0
    assert bundled.user_map.dtype == pl.Int64 and bundled.user_map.to_external([0]).item() == 1
    assert ev.get_column("timestamp").min().year == 1996


def test_bundled_ml_latest_small_item_features(bundled: Dataset) -> None:
    feats = bundled.item_features
    assert feats is not None and feats.height == 9_724
    assert feats.schema["genres"] == pl.List(pl.String) and feats.schema["year"] == pl.Int64
    toy = feats.filter(pl.col("item_id") == int(bundled.item_map.to_internal([1])[0]))
    assert toy.get_column("title").item() == "Toy Story (1995)" and toy.get_column("year").item() == 1995
    assert toy.get_column("genres").item().to_list() == [
        "Adventure",
        "Animation",
        "Children",
        "Comedy",
        "Fantasy",
    ]
    no_genre = feats.filter(pl.col("genres").list.len() == 0)
    assert no_genre.height > 0  # "(no genres listed)" became []
    assert feats.get_column("genres").explode().drop_nulls().is_in(["(no genres listed)"]).sum() == 0
    assert feats.filter(pl.col("title") == "Babylon 5").get_column("year").item() is None


def test_bundled_is_last_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert find_dataset("ml-latest-small") == BUNDLED_ML
    with pytest.raises(DatasetNotFoundError) as err:
        find_dataset("movielens-1m", tmp_path / "nowhere")
    msg = str(err.value)
    assert (
        "rankstack data download movielens-1m" in msg and "nowhere" in msg and "ratings_chrono.csv.gz" in msg
    )


def test_unknown_name_is_clear() -> None:
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'nope'.*ml-latest-small"):
        load_dataset("nope")
    with pytest.raises(KeyError):
        load_dataset("nope")


def test_list_datasets_reports_found_and_missing(tmp_path: Path) -> None:
    root = tmp_path / "lightgcn" / "gowalla"
    root.mkdir(parents=True)
    (root / "train.txt").write_text("0 1 2\n")
    (root / "test.txt").write_text("0 3\n")
    found = {spec.name: path for spec, path in list_datasets(tmp_path)}
    assert set(found) == set(EXPECTED)
    assert found["gowalla"] == root
    assert found["ml-latest-small"] is not None


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shared_dataset_counts(name: str) -> None:
    data = shared(name)
    assert (data.n_users, data.n_items, len(data)) == EXPECTED[name]
    assert data.events.schema["timestamp"] == pl.Datetime("us")
    assert data.events.get_column("user_id").max() == data.n_users - 1


def test_movielens_100k_genres_from_flags() -> None:
    data = shared("movielens-100k")
    feats = data.item_features
    assert feats is not None and feats.height == 1_682
    toy = feats.filter(pl.col("item_id") == int(data.item_map.to_internal([1])[0]))
    assert toy.get_column("genres").item().to_list() == ["Animation", "Children's", "Comedy"]
    assert toy.get_column("year").item() == 1995
    assert data.events.get_column("value").value_counts().sort("value").get_column("count").to_list() == [
        6_110,
        11_370,
        27_145,
        34_174,
        21_201,
    ]


def test_movielens_1m_order_from_seq() -> None:
    data = shared("movielens-1m")
    user1 = int(data.user_map.to_internal([1])[0])
    seq = data.item_map.to_external(data.sequences()[user1]).to_list()
    assert seq[:4] == [3186, 1721, 1022, 1270] and seq[-2:] == [1566, 48]
    feats = data.item_features
    assert feats is not None and feats.height == 3_416 and feats.schema["genres"] == pl.List(pl.String)


def test_gowalla_predefined_split() -> None:
    data = shared("gowalla")
    assert data.schema.context_columns == ("split",)
    counts = dict(data.events.group_by("split").len().iter_rows())
    assert counts == {"train": 810_128, "test": 217_242}
    assert data.events.get_column("timestamp").null_count() == len(data)
    assert set(data.events.get_column("event").unique()) == {"interaction"}


def test_beauty_position_timestamps() -> None:
    data = shared("beauty")
    per_user = data.events.group_by("user_id").agg(
        pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"), pl.len().alias("n")
    )
    assert (per_user.get_column("first").dt.epoch("s") == 0).all()
    assert (per_user.get_column("last").dt.epoch("s") == per_user.get_column("n") - 1).all()


@pytest.mark.parametrize(("name", "clicks"), [("open-bandit", 38), ("open-bandit-bts", 42)])
def test_open_bandit_impressions_and_clicks(name: str, clicks: int) -> None:
    data = shared(name)
    ev = data.events
    imp = ev.filter(pl.col("event") == "impression")
    clk = ev.filter(pl.col("event") == "click")
    assert imp.height == 10_000 and clk.height == clicks
    assert imp.get_column("request_id").n_unique() == 10_000
    assert set(imp.get_column("position").unique()) == {0, 1, 2}
    prop = ev.get_column("propensity")
    assert prop.null_count() == 0 and prop.min() > 0 and prop.max() <= 1
    assert set(clk.get_column("request_id")) <= set(imp.get_column("request_id"))
    assert data.schema.context_columns == tuple(f"user_feature_{i}" for i in range(4))
    assert ev.get_column("timestamp").min().isoformat().startswith("2019-11-24")
    feats = data.item_features
    assert feats is not None and feats.height == 80
    assert feats.columns == ["item_id", *(f"item_feature_{i}" for i in range(4))]


def test_ml_1m_prefers_ratings_dat(tmp_path: Path) -> None:
    root = tmp_path / "movielens-1m"
    root.mkdir()
    rows = [f"{u}::10::{r}::{1000 + u}" for u, r in zip(range(1, 7), [5, 4, 3, 2, 1, 5], strict=True)]
    rows += ["1::20::3::999", "2::20::4::998"]  # movie 20 has < 5 ratings: filtered out
    (root / "ratings.dat").write_text("\n".join(rows) + "\n")
    (root / "movies.dat").write_bytes(
        "10::Caf\xe9 (1999)::Drama|Comedy\n20::B (2000)::Drama\n".encode("latin-1")
    )
    data = REGISTRY["movielens-1m"].loader(root)
    assert (data.n_users, data.n_items, len(data)) == (6, 1, 6)
    assert data.events.get_column("timestamp").dt.epoch("s").to_list() == list(range(1001, 1007))
    feats = data.item_features
    assert feats is not None and feats.row(0) == (0, "Café (1999)", ["Drama", "Comedy"], 1999)


def test_gowalla_plain_text_and_odd_lines(tmp_path: Path) -> None:
    root = tmp_path / "g"
    root.mkdir()
    (root / "train.txt").write_text("0 5 6 7 \n1 5\n2\n")
    with gzip.open(root / "test.txt.gz", "wt") as fh:
        fh.write("0 8\n1 6\n")
    data = REGISTRY["gowalla"].loader(root)
    assert (data.n_users, data.n_items, len(data)) == (2, 4, 6)
    (root / "train.txt").write_text("0 5 x\n")
    with pytest.raises(DataValidationError, match=r"train\.txt.*integer ids"):
        REGISTRY["gowalla"].loader(root)


def test_csv_with_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "my_events.csv"
    path.write_text(
        "uid,sku,when,kind,amount\nu1,007,2024-01-01T10:00:00,click,\nu2,8,1704103200,purchase,9.5\n"
    )
    data = load_event_log(
        path,
        columns={"user_id": "uid", "item_id": "sku", "timestamp": "when", "event": "kind", "value": "amount"},
    )
    assert data.name == "my_events" and (data.n_users, data.n_items, len(data)) == (2, 2, 2)
    assert data.item_map.dtype == pl.String  # "007" keeps its leading zero
    assert data.events.get_column("timestamp").dt.hour().to_list() == [10, 10]
    assert data.events.get_column("value").to_list() == [None, 9.5]
    int_ids = tmp_path / "ints.csv.gz"
    with gzip.open(int_ids, "wt") as fh:
        fh.write("user_id,item_id\n1,10\n2,10\n")
    assert load_dataset(str(int_ids)).item_map.dtype == pl.Int64


def test_parquet_with_mapping_and_context(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"u": [1, 1, 2], "i": ["a", "b", "a"], "device": ["ios", "web", "ios"]}).write_parquet(path)
    schema = EventSchema(context_columns=("device",))
    data = load_event_log(path, columns={"user_id": "u", "item_id": "i"}, schema=schema, name="logs")
    assert data.name == "logs" and data.events.get_column("device").to_list() == ["ios", "web", "ios"]
    assert data.schema == schema


def test_directory_with_events_and_features(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    pl.DataFrame({"user_id": ["x", "y"], "item_id": [3, 4], "event": ["view", "cart"]}).write_parquet(
        folder / "events.parquet"
    )
    pl.DataFrame({"item_id": [3, 4, 5], "price": [1.0, 2.0, 3.0]}).write_parquet(folder / "items.parquet")
    pl.DataFrame({"user_id": ["x"], "age": [30]}).write_parquet(folder / "users.parquet")
    data = load_dataset(str(folder))
    assert data.name == "shop" and len(data) == 2
    assert data.item_features is not None and data.item_features.get_column("price").to_list() == [1.0, 2.0]
    assert data.user_features is not None and data.user_features.row(0) == (0, 30)
    saved = tmp_path / "saved"
    data.save(saved)
    again = load_event_log(saved)
    assert again.checksum() == data.checksum() and again.user_map == data.user_map


def test_missing_inputs_raise_clearly(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="event log not found"):
        load_dataset(str(tmp_path / "absent.csv"))
    with pytest.raises(DatasetNotFoundError, match=r"events\.parquet"):
        load_event_log(tmp_path)
