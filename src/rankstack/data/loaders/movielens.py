"""MovieLens loaders: ml-latest-small, ml-100k and ml-1m (ratings as ``rating`` events with values)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.filters import filter_min_count
from rankstack.data.loaders.specs import (
    DatasetSpec,
    Download,
    finish,
    first_existing,
    read_bytes,
    read_separated,
    year_from_title,
)

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
ML1M_MIN_ITEM_RATINGS = 5
NO_GENRES = "(no genres listed)"
UNKNOWN_GENRE = "unknown"


def _split_genres(genres: pl.Expr) -> pl.Expr:
    """``A|B`` → ["A", "B"]; the "(no genres listed)" marker and blanks → []."""
    return genres.str.split("|").list.eval(
        pl.element().filter((pl.element() != NO_GENRES) & (pl.element() != ""))
    )


def _rating_events(df: pl.DataFrame) -> pl.DataFrame:
    """Canonical columns of a user/item/rating/timestamp frame."""
    return df.select(
        pl.col("user_id"),
        pl.col("item_id"),
        pl.col("timestamp"),
        pl.lit("rating").alias("event"),
        pl.col("rating").cast(pl.Float64).alias("value"),
    )


def load_ml_latest_small(root: Path) -> Dataset:
    """ratings.csv (epoch-second timestamps) + movies.csv (title, genres list, year)."""
    ratings_path = root / "ratings.csv"
    ratings = pl.read_csv(ratings_path, schema_overrides={"userId": pl.Int64, "movieId": pl.Int64}).rename(
        {"userId": "user_id", "movieId": "item_id"}
    )
    movies = pl.read_csv(root / "movies.csv", schema_overrides={"movieId": pl.Int64}).select(
        pl.col("movieId").alias("item_id"),
        pl.col("title"),
        _split_genres(pl.col("genres")).alias("genres"),
        year_from_title(pl.col("title")),
    )
    return finish(_rating_events(ratings), name="ml-latest-small", source=ratings_path, item_features=movies)


def load_ml_100k(root: Path) -> Dataset:
    """u.data (tab-separated) + u.item (latin-1, ``|``-separated, 19 genre flags named by u.genre)."""
    data_path = root / "u.data"
    ratings = read_separated(
        data_path, ["user_id", "item_id", "rating", "timestamp"], separator="\t", dtypes=[pl.Int64()] * 4
    )
    genre_table = read_separated(root / "u.genre", ["genre", "index"], separator="|").filter(
        pl.col("genre").is_not_null() & (pl.col("genre") != "")
    )
    genres = genre_table.sort(pl.col("index").cast(pl.Int64)).get_column("genre").to_list()
    genres = [None if g == UNKNOWN_GENRE else g for g in genres]
    flag_cols = [f"g{i}" for i in range(len(genres))]
    items = read_separated(
        root / "u.item",
        ["item_id", "title", "release", "video_release", "url", *flag_cols],
        separator="|",
        encoding="latin-1",
    )
    flags = pl.concat_list(
        [
            pl.when(pl.col(c) == "1").then(pl.lit(g, dtype=pl.String))
            for c, g in zip(flag_cols, genres, strict=True)
        ]
    )
    movies = items.select(
        pl.col("item_id").cast(pl.Int64),
        pl.col("title"),
        flags.list.drop_nulls().alias("genres"),
        year_from_title(pl.col("title")),
    )
    return finish(_rating_events(ratings), name="movielens-100k", source=data_path, item_features=movies)


def load_ml_1m(root: Path) -> Dataset:
    """Ratings of movies with ≥ 5 ratings (the SASRec/BERT4Rec variant) + movies.dat features.

    Uses GroupLens ``ratings.dat`` (real timestamps) when present, else ``ratings_chrono.csv.gz`` whose
    ``seq`` (0-based position in the user's history) becomes the timestamp in epoch seconds: only the
    per-user order is meaningful then, not the dates or the gaps.
    """
    dat = first_existing(root, ("ratings.dat",))
    if dat is not None:
        source = dat
        ratings = read_separated(
            dat, ["user_id", "item_id", "rating", "timestamp"], separator="::", dtypes=[pl.Int64()] * 4
        )
    else:
        source = root / "ratings_chrono.csv.gz"
        ratings = pl.read_csv(
            read_bytes(source), schema_overrides={"user_id": pl.Int64, "movie_id": pl.Int64}
        )
        ratings = ratings.rename({"movie_id": "item_id", "seq": "timestamp"})
    ratings = filter_min_count(ratings, column="item_id", min_count=ML1M_MIN_ITEM_RATINGS, source=str(source))
    items = read_separated(
        root / "movies.dat", ["item_id", "title", "genres"], separator="::", encoding="latin-1"
    )
    movies = items.select(
        pl.col("item_id").cast(pl.Int64),
        pl.col("title"),
        _split_genres(pl.col("genres")).alias("genres"),
        year_from_title(pl.col("title")),
    )
    return finish(_rating_events(ratings), name="movielens-1m", source=source, item_features=movies)


RESEARCH_NO_REDIST = "research, non-commercial; no redistribution (GroupLens)"

SPECS = (
    DatasetSpec(
        name="ml-latest-small",
        description="MovieLens latest-small: 100,836 ratings, 610 users, 9,724 movies",
        subdir="ml-latest-small",
        files=(("ratings.csv",), ("movies.csv",)),
        licence="research, non-commercial; redistribution under the same terms (GroupLens)",
        default_split="leave_one_out",
        downloads=(Download(f"{GROUPLENS}/ml-latest-small.zip", kind="zip", strip="ml-latest-small/"),),
        loader=load_ml_latest_small,
    ),
    DatasetSpec(
        name="movielens-100k",
        description="MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies",
        subdir="movielens-100k",
        files=(("u.data",), ("u.item",), ("u.genre",)),
        licence=RESEARCH_NO_REDIST,
        default_split="leave_one_out",
        downloads=(Download(f"{GROUPLENS}/ml-100k.zip", kind="zip", strip="ml-100k/"),),
        loader=load_ml_100k,
    ),
    DatasetSpec(
        name="movielens-1m",
        description="MovieLens 1M, movies with ≥5 ratings: 999,611 ratings, 6,040 users, 3,416 movies",
        subdir="movielens-1m",
        files=(("ratings.dat", "ratings_chrono.csv.gz"), ("movies.dat",)),
        licence=RESEARCH_NO_REDIST,
        default_split="leave_one_out",
        downloads=(Download(f"{GROUPLENS}/ml-1m.zip", kind="zip", strip="ml-1m/"),),
        loader=load_ml_1m,
    ),
)
