"""The MovieLens 100K loader and the time-based item-cold split, on tiny hand-written slices.

The real files are never copied here (their terms forbid redistribution): every test writes
its own few lines in the MovieLens formats into ``tmp_path``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from helpers import fetch_all

from dropoutnet.benchmarks import movielens as bench
from dropoutnet.config import load_config
from dropoutnet.data import datasets
from dropoutnet.data import movielens as ml

REPO = Path(__file__).resolve().parent.parent
DAY = 86400
T0 = 880000000  # 1997-11-20T04:26:40Z

# user|age|gender|occupation|zip
USERS = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|17|M|student|T8H1N",
         "4|33|F|writer|02139"]


def _genres(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ml.GENRES)


# movie id|title|release date|video release date|IMDb URL|19 genre flags (latin-1 titles)
ITEMS = [
    f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{_genres('Animation', 'Comedy')}",
    f"2|GoldenEye (1995)|01-Jan-1995||http://imdb/2|{_genres('Action', 'Thriller')}",
    f"3|Café au lait (1994)|||http://imdb/3|{_genres('Comedy')}",
    f"4|Heat (1995)|15-Dec-1995||http://imdb/4|{_genres('Action', 'Crime')}",
    f"5|Nouvelle vague (1990)|01-Feb-1990|||{_genres('Drama')}",
    f"6|unknown||||{_genres('unknown')}",
]

# user, item, rating, time: item publish times 1 < 2 < 3 < 4 < 5 < 6
RATINGS = [
    (1, 1, 5, T0), (2, 1, 3, T0 + 100), (1, 2, 4, T0 + DAY), (3, 2, 2, T0 + DAY + 5),
    (2, 3, 4, T0 + 2 * DAY), (3, 1, 5, T0 + 2 * DAY + 7), (1, 4, 5, T0 + 3 * DAY),
    (2, 4, 1, T0 + 3 * DAY + 9), (4, 1, 4, T0 + 3 * DAY + 60), (3, 5, 4, T0 + 4 * DAY),
    (1, 5, 2, T0 + 4 * DAY + 1), (2, 6, 5, T0 + 5 * DAY), (4, 6, 4, T0 + 5 * DAY + 3),
    (1, 3, 4, T0 + 5 * DAY + 10),
]


def write_slice(folder: Path, users=USERS, items=ITEMS, ratings=RATINGS,
                skip: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "u.user": "".join(f"{line}\n" for line in users).encode("latin-1"),
        "u.item": "".join(f"{line}\n" for line in items).encode("latin-1"),
        "u.data": "".join(
            (r if isinstance(r, str) else "\t".join(map(str, r))) + "\n" for r in ratings
        ).encode("latin-1"),
    }
    for name, data in files.items():
        if name not in skip:
            (folder / name).write_bytes(data)
    return folder


def _checksums(url: str) -> dict[str, tuple]:
    return {t: fetch_all(url, f"select count(*), md5(coalesce(string_agg(t::text, '|' "
                           f"order by t::text), '')) from {t} t")[0] for t in ml.TABLES}


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def test_load_maps_the_files_to_the_raw_tables(db_schema, tmp_path):
    summary = ml.load(db_schema, write_slice(tmp_path / "ml"))
    n_clicks = sum(r[2] >= 4 for r in RATINGS)
    assert summary["rows"] == {"ml_users": 4, "ml_authors": 5, "ml_items": 6, "ml_item_text": 6,
                               "ml_events": len(RATINGS) + n_clicks}
    assert (summary["ratings"], summary["clicks"]) == (len(RATINGS), n_clicks)

    # every rating an impression; a rating >= 4 also a click at the same time
    events = fetch_all(db_schema, "select user_id, item_id, event_type, event_time, rating "
                               "from ml_events")
    imps = sorted((u, i, t, r) for u, i, e, t, r in events if e == "impression")
    clicks = sorted((u, i, t, r) for u, i, e, t, r in events if e == "click")
    assert imps == sorted((str(u), str(i), _utc(t), r) for u, i, r, t in RATINGS)
    assert clicks == sorted((str(u), str(i), _utc(t), r) for u, i, r, t in RATINGS if r >= 4)

    # an item's create_time is its first rating; a user's register_time too
    items = {row[0]: row[1:] for row in fetch_all(db_schema, """
        select item_id, create_time, author_id, category, tags, year, decade, title
        from ml_items""")}
    for item in range(1, 7):
        first = min(t for _, i, _, t in RATINGS if i == item)
        assert items[str(item)][0] == _utc(first)
    users = dict(fetch_all(db_schema, "select user_id, register_time from ml_users"))
    for user in range(1, 5):
        assert users[str(user)] == _utc(min(t for u, _, _, t in RATINGS if u == user))
    # genres: tags and a primary genre, which is also the "author"
    assert items["1"][1:5] == ("Animation", "Animation", ["Animation", "Comedy"], 1995)
    assert items["4"][1:3] == ("Action", "Action") and items["4"][4:6] == (1995, "1990s")
    assert items["3"][4] == 1994 and items["3"][6] == "Café au lait (1994)"  # year from title
    assert items["6"][1:6] == ("unknown", "unknown", ["unknown"], None, None)
    # how new a movie is when it appears: days from its release date to its first rating
    ages = dict(fetch_all(db_schema, "select item_id, release_age_days from ml_items"))
    assert ages["1"] == (_utc(T0).date() - dt.date(1995, 1, 1)).days
    assert ages["4"] == (_utc(T0 + 3 * DAY).date() - dt.date(1995, 12, 15)).days
    assert ages["3"] is None and ages["6"] is None  # no release date
    authors = dict(fetch_all(db_schema, "select author_id, genre from ml_authors"))
    assert set(authors) == {row[1] for row in items.values()}
    # users: age band, zip region
    rows = {r[0]: r[1:] for r in fetch_all(db_schema, "select user_id, age, age_band, gender, "
                                                   "occupation, zip_region, zip3 from ml_users")}
    assert rows["1"] == (24, "18-24", "M", "technician", "8", "857")
    assert rows["3"] == (17, "under18", "M", "student", "other", "T8H")
    assert rows["4"][4] == "0"
    # item text: hashed title words (unit length) and genre flags
    text = dict(fetch_all(db_schema, "select item_id, vector_dims(title_embedding) || ':' || "
                                  "round(vector_norm(title_embedding)::numeric, 4) || ':' || "
                                  "genre_vector::text from ml_item_text"))
    assert text["1"] == "16:1.0000:[0,0,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0]"


def test_load_into_a_schema_and_the_config_reads_it(database_url, db_schema, tmp_path):
    target = f"{db_schema.schema}_ml"
    try:
        summary = ml.load(database_url, write_slice(tmp_path / "ml"), schema=target)
        assert summary["schema"] == target
        (n,), = fetch_all(database_url, f'select count(*) from "{target}".ml_events')
        assert n == summary["rows"]["ml_events"]
    finally:
        _query_autocommit(database_url, f'drop schema if exists "{target}" cascade')
    # the shipped config names exactly the loaded tables and columns
    cfg = load_config(REPO / "config" / "movielens-100k.yaml")
    loaded = {"events": "ml_events", "items": "ml_items", "authors": "ml_authors",
              "item_text": "ml_item_text", "users": "ml_users"}
    assert {name: cfg.raw.table(name).table for name in loaded} == loaded
    columns = {t: set(c.split()[0] for c in ml._DDL[t].replace("\n", " ").split(","))
               for t in ml.TABLES}
    for f in cfg.features:
        if f.source:
            assert f.source_column in columns[loaded[f.source_table]], f.name


def _query_autocommit(url: str, sql: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize("missing", ["u.data", "u.item", "u.user"])
def test_missing_file_is_named(tmp_path, missing):
    folder = write_slice(tmp_path / "ml", skip=(missing,))
    with pytest.raises(datasets.DatasetError, match=rf"{missing} is missing"):
        ml.read(folder)
    with pytest.raises(ValueError, match="is not a folder"):
        ml.read(tmp_path / "nowhere")


@pytest.mark.parametrize("file, lines, line_no, expected", [
    ("u.data", RATINGS + ["x\t1"], 15,
     "u.data line 15: expected 4 tab-separated integers user, item, rating, timestamp.*"
     r"got 'x\\t1'"),
    ("u.data", [RATINGS[0], (1, 2, 9, T0)], 2, r"u.data line 2: expected 4 tab-separated.*rating 1-5"),
    ("u.data", [RATINGS[0], (1, 77, 4, T0)], 2, r"u.data line 2: movie 77 is not in u.item"),
    ("u.data", [RATINGS[0], (9, 1, 4, T0)], 2, r"u.data line 2: user 9 is not in u.user"),
    ("u.item", ITEMS[:2] + ["3|Broken (1995)|01-Jan-1995||url|0|1"], 3,
     r"u.item line 3: expected 24 '\|'-separated fields"),
    ("u.item", ITEMS[:1] + [ITEMS[1].replace("01-Jan-1995", "1995/01/01")], 2,
     r"u.item line 2: expected 24 .*release date \(like 01-Jan-1995"),
    ("u.item", ITEMS + [ITEMS[0]], 7, r"u.item line 7: movie id 1 repeats line 1"),
    ("u.user", USERS[:3] + ["4|33|X|writer|02139"], 4,
     r"u.user line 4: expected 5 '\|'-separated fields .*gender \(M or F\).*got '4\|33\|X"),
])
def test_malformed_row_names_file_line_and_expectation(tmp_path, file, lines, line_no, expected):
    kwargs = {"u.data": "ratings", "u.item": "items", "u.user": "users"}
    folder = write_slice(tmp_path / "ml", **{kwargs[file]: lines})
    with pytest.raises(datasets.DatasetError, match=expected) as err:
        ml.read(folder)
    assert f"{file} line {line_no}:" in str(err.value)


def test_failed_load_keeps_previous_tables(db_schema, tmp_path, monkeypatch):
    ml.load(db_schema, write_slice(tmp_path / "good"))
    before = _checksums(db_schema)

    bad = write_slice(tmp_path / "bad", ratings=RATINGS[:3] + ["1\t2\t3"])
    with pytest.raises(datasets.DatasetError, match="u.data line 4"):
        ml.load(db_schema, bad)
    assert _checksums(db_schema) == before

    # a failure in the middle of the database work (users, authors, items already reloaded)
    real_copy = ml._copy

    def failing_copy(cur, table, columns):
        if table.endswith("ml_events"):
            raise RuntimeError("disk full (simulated)")
        return real_copy(cur, table, columns)

    monkeypatch.setattr(ml, "_copy", failing_copy)
    other = write_slice(tmp_path / "other", users=USERS[:3], ratings=[
        r for r in RATINGS if r[0] != 4])
    with pytest.raises(RuntimeError, match="simulated"):
        ml.load(db_schema, other)
    assert _checksums(db_schema) == before


def test_cli_arguments_and_load(db_schema, tmp_path):
    parser = argparse.ArgumentParser()
    datasets.add_arguments(parser)
    args = parser.parse_args(["load", "movielens-100k", "--path", str(write_slice(tmp_path / "m"))])
    assert (args.dataset, args.schema) == ("movielens-100k", None)
    summary = datasets.load_from_args(args, db_schema)
    assert summary["rows"]["ml_items"] == 6
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "movielens-1m", "--path", "x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "movielens-100k"])  # --path is required


def test_time_cold_split_on_a_hand_made_slice(tmp_path):
    folder = write_slice(tmp_path / "ml")
    split = bench.split_time_cold(folder, cold_share=0.34)  # floor(0.34 * 6) = 2 cold items
    assert split["candidates"].tolist() == [5, 6]  # the two published last
    assert split["cutoff_time"] == T0 + 4 * DAY  # item 5's first rating
    train = sorted(zip(split["train"]["user"].tolist(), split["train"]["item"].tolist()))
    assert train == sorted((u, i) for u, i, _, t in RATINGS if t < T0 + 4 * DAY)
    # rating (1, 3) is late but not on a cold item: neither train nor test
    assert (1, 3) not in train
    # test: ratings >= 4 on cold items by users with a training click; (1, 5) is rated 2
    test = sorted(zip(split["test"]["user"].tolist(), split["test"]["item"].tolist()))
    assert test == [(2, 6), (3, 5), (4, 6)]
    assert split["test_users"].tolist() == [2, 3, 4]
    assert split["relevant"] == [{1}, {0}, {1}]
    # "seen" as any training rating: a user whose training ratings are all < 4 joins
    with_low = [*RATINGS, (5, 1, 2, T0 + 1), (5, 6, 5, T0 + 6 * DAY)]
    low = write_slice(tmp_path / "low", ratings=with_low, users=USERS + ["5|40|F|artist|10001"])
    assert bench.split_time_cold(low, 0.34)["test_users"].tolist() == [2, 3, 4]
    assert bench.split_time_cold(low, 0.34, seen="rating")["test_users"].tolist() == [2, 3, 4, 5]


def test_baselines_recall_and_bootstrap(tmp_path):
    split = bench.split_time_cold(write_slice(tmp_path / "ml"), cold_share=0.5)
    assert split["candidates"].tolist() == [4, 5, 6] and split["cutoff_time"] == T0 + 3 * DAY
    assert split["test_users"].tolist() == [1, 2, 3]  # user 4 has no training rating
    assert split["relevant"] == [{0}, {2}, {1}]  # (1, 4), (2, 6), (3, 5)
    # genre popularity: training ratings per genre (Animation 3, Comedy 3 + 1, Action 2,
    # Thriller 2), summed over the candidate's genres (Action+Crime, Drama, unknown)
    pop = bench.baseline_scores(split, "genre_popularity")
    assert np.allclose(pop, [[2.0, 0.0, 0.0]] * 3)
    # content kNN: user 1 is the mean of items 1 and 2 (Animation, Comedy, Action, Thriller:
    # 0.5 each), cosine with item 4 (Action, Crime) = 0.5 / sqrt(2); users 2, 3 share nothing
    knn = bench.baseline_scores(split, "genre_knn")
    assert np.allclose(knn, [[0.5 / np.sqrt(2), 0, 0], [0, 0, 0], [0, 0, 0]])
    # ties are broken by publish order (candidate 4 first), or averaged
    assert bench.recall_at_k(knn, split["relevant"], 1).tolist() == [1.0, 0.0, 0.0]
    assert np.allclose(bench.recall_at_k(knn, split["relevant"], 1, ties="expected"),
                       [1.0, 1 / 3, 1 / 3])
    assert bench.recall_at_k(knn, split["relevant"], 2).tolist() == [1.0, 0.0, 1.0]
    assert bench.recall_at_k(knn, split["relevant"], 3).tolist() == [1.0] * 3
    scores = np.array([[0.1, 0.9, 0.0], [0.2, 0.1, 0.9], [0.9, 0.1, 0.0]])
    assert bench.recall_at_k(scores, split["relevant"], 1).tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="unknown baseline"):
        bench.baseline_scores(split, "oracle")
    assert bench.baseline_scores(split, "random").shape == (3, 3)

    per_user = np.array([0.0] * 50 + [1.0] * 50)
    lo, hi = bench.bootstrap_ci(per_user, n_resamples=1000, seed=1)
    assert lo < 0.5 < hi and 0.35 < lo and hi < 0.65
    assert bench.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    figures = bench.evaluate_scores(split, scores, ks=(1,), n_resamples=200)
    assert figures["recall@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["recall@1_ci"][0] <= figures["recall@1"] <= figures["recall@1_ci"][1]


def test_content_baselines_and_the_strongest_baseline(tmp_path):
    folder = write_slice(tmp_path / "ml")
    movies = ml.read(folder)
    # the content the loader computes: genres, decade, year, release age when first rated
    assert bench.movie_content(movies, np.array([0, 2, 3, 5])) == {
        "genres": ["Animation|Comedy", "Comedy", "Action|Crime", "unknown"],
        "decade": ["1990s", "1990s", "1990s", None],
        "year": [1995, 1994, 1995, None],  # Café au lait: no release date, the title's year
        "release_age_days": [1054, None, 709, None],  # 1995-01-01 .. 1997-11-20; 12-15 .. 11-23
    }
    split = bench.split_time_cold(folder, cold_share=0.5)
    pop = bench.baseline_scores(split, "content_popularity")
    assert pop.shape == (3, 3) and np.all(pop == pop[0])  # the same ranking for every user
    factors = bench.baseline_scores(split, "ridge_to_factors")
    assert factors.shape == (3, 3) and np.all(np.isfinite(factors))
    # every test user has a training click, so ALS factors: no all-zero row of scores
    assert np.all(np.abs(factors).sum(axis=1) > 0)

    result = bench.benchmark_baselines(folder, ks=(1, 2), n_resamples=100, cold_share=0.5)
    assert {"genre_popularity", "genre_knn", "content_popularity", "ridge_to_factors",
            "random"} <= set(result["baselines"])
    for name, figures in result["baselines"].items():
        for k in (1, 2):
            lo, hi = figures[f"recall@{k}_ci"]
            assert lo - 1e-4 <= figures[f"recall@{k}"] <= hi + 1e-4, (name, k)
    for key, name in result["strongest_baseline"].items():
        assert result["baselines"][name][key] == max(
            b[key] for b in result["baselines"].values())


def test_title_embedding_is_stable_and_ignores_the_year():
    a = ml.title_embedding("Toy Story (1995)")
    assert a.shape == (16,) and np.isclose(np.linalg.norm(a), 1.0)
    assert np.allclose(a, ml.title_embedding("toy story"))
    assert ml.title_words("Shawshank Redemption, The (1994)") == ["shawshank", "redemption", "the"]
    assert ml.primary_genre([1] + [0] * 18) == "unknown"
    assert ml.primary_genre([1, 0, 0, 0, 0, 1] + [0] * 13) == "Comedy"


def test_model_benchmark_runs_the_pipeline_steps_on_the_split(database_url, tmp_path):
    from dropoutnet.benchmarks import movielens as bench

    folder = write_slice(tmp_path / "ml")
    result = bench.run(folder, database_url, ks=(1, 2), seeds=2,
                       settings={"training": {"epochs": 1}}, cold_share=0.34)
    assert result["cold_items"] == 2 and result["test_users"] == 3
    assert result["settings"]["training"]["epochs"] == 1
    assert result["model"]["seeds"] == 2
    for k in (1, 2):
        assert 0.0 <= result["model"][f"recall@{k}"] <= 1.0
        assert len(result["model"][f"recall@{k}_per_seed"]) == 2
        assert f"recall@{k}" in result["baselines"]["genre_popularity"]
        lo, hi = result["model"][f"recall@{k}_ci"]
        assert lo - 1e-4 <= result["model"][f"recall@{k}"] <= hi + 1e-4
        assert result["strongest_baseline"][f"recall@{k}"] in result["baselines"]
    # two candidates: every user's relevant item is in the top 2
    assert result["model"]["recall@2"] == 1.0
    assert result["train"]["rows"] > 0


def test_tuning_uses_a_validation_split_of_the_training_ratings_only(database_url, tmp_path):
    from dropoutnet.benchmarks import movielens as bench

    folder = write_slice(tmp_path / "ml")
    data = ml.read(folder)
    test = bench.split_time_cold(data, 0.34)
    p = bench.validation(database_url, data, 0.34)
    # the validation split is the same protocol on the ratings before the test cutoff: its
    # cold movie (4) is the last training movie, and no test movie (5, 6) is anywhere in it
    assert list(p.split["candidates"]) == [4] and list(test["candidates"]) == [5, 6]
    assert p.split["cutoff_time"] < test["cutoff_time"]
    assert not {5, 6} & set(int(i) for i in p.train["item_ids"])


def test_validation_folds_hold_out_arrivals_of_the_training_ratings_only(database_url,
                                                                         tmp_path):
    from dropoutnet.benchmarks import movielens as bench

    folder = write_slice(tmp_path / "ml")
    data = ml.read(folder)
    test = bench.split_time_cold(data, 0.34)
    (fold,) = bench.validation_folds(database_url, data, folds=3, cold_share=0.34)
    # the arrival (movie 4, the last published before the test cutoff) loses every rating,
    # the rest of the history up to the test cutoff trains; no test movie is anywhere in it
    assert list(fold.split["candidates"]) == [4]
    assert not {4, 5, 6} & set(int(i) for i in fold.train["item_ids"])
    assert fold.split["cutoff_time"] <= test["cutoff_time"]
    # its relevant user: user 1 rated it 5 and has a training click
    assert list(fold.split["test_users"]) == [1] and fold.split["relevant"] == [{0}]
    # it is ranked as a new movie: no behaviour, and 0 days old
    assert fold.items["i_ratings_30d"][0] != fold.items["i_ratings_30d"][0]  # NaN: cold
    assert fold.items["i_age_days"][0] == 0.0

    lines = []
    result = bench.tune(folder, database_url, trials=2, seed=0, k=1, folds=3,
                        cold_share=0.34, echo=lines.append)
    assert lines[0].startswith("validation fold 0: 1 held-out movies, 1 users, ")
    assert "training samples, scored at recall@1 (the test's recall@1 ranks " in lines[0]
    assert lines[1].startswith("trial 1/2: recall@1 ") and len(result["trials"]) == 2


def test_training_never_sees_a_candidate():
    from dropoutnet.benchmarks.movielens import without_items

    # a fold's held-out movie (7) drawn as a sampled negative twice; the rest stays aligned
    train = {"features": {"i_year": np.array([1990.0, 1997.0, 1995.0, 1997.0]),
                          "i_genres": np.array(["a", "b", "c", "b"], dtype=object)},
             "labels": np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32),
             "item_ids": np.array(["3", "7", "4", "7"], dtype=object),
             "user_ids": np.array(["1", "1", "2", "2"], dtype=object),
             "sample_dates": np.array(["2024-01-01"] * 4, dtype=object)}
    out = without_items(train, np.array([7]))
    assert list(out["item_ids"]) == ["3", "4"] and list(out["user_ids"]) == ["1", "2"]
    assert list(out["labels"]) == [1.0, 0.0]
    assert list(out["features"]["i_year"]) == [1990.0, 1995.0]
    assert list(out["features"]["i_genres"]) == ["a", "c"]
    assert len(train["item_ids"]) == 4  # the partition read is left as it was
    assert without_items(train, np.array([9])) is train


def test_folds_are_scored_at_the_share_of_candidates_the_test_ranks():
    from dropoutnet.benchmarks.movielens import same_share_k

    # a fold of 72 movies against a test of 252: recall@20 -> @6, @50 -> @14, @100 -> @29
    assert [same_share_k(k, 72, 252) for k in (20, 50, 100)] == [6, 14, 29]
    assert same_share_k(20, 5, 252) == 1  # never below one
    assert same_share_k(20, 252, 252) == 20


def test_validation_folds_refuse_a_history_without_a_liked_arrival(database_url, tmp_path):
    from dropoutnet.benchmarks import movielens as bench

    # movie 4 (the only arrival before the test cutoff) rated below 4 by everyone
    ratings = [r for r in RATINGS if r[1] != 4] + [(1, 4, 2, T0 + 3 * DAY)]
    data = ml.read(write_slice(tmp_path / "ml", ratings=ratings))
    with pytest.raises(ValueError, match="no validation fold: none of the 1 movies published "
                                         "in the last 34% of the training history"):
        bench.validation_folds(database_url, data, folds=2, cold_share=0.34)


def test_benchmark_cli_refuses_a_zero_budget(tmp_path, capsys):
    from dropoutnet.cli import main

    folder = write_slice(tmp_path / "ml")
    assert main(["benchmark", "movielens", "--path", str(folder), "--tune", "0"]) == 1
    assert "--tune must be at least 1 (the number of trials), got 0" in capsys.readouterr().err
    assert main(["benchmark", "movielens", "--path", str(folder), "--seeds", "0"]) == 1
    assert "--seeds must be at least 1, got 0" in capsys.readouterr().err
