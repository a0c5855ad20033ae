"""The sample templates on a tiny hand-checked dataset in the real (embedded) Postgres."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest

from dropoutnet import db, samples
from helpers import load_tiny, make_config

BIZDATE = dt.date(2026, 11, 10)


@pytest.fixture
def tiny(db_schema):
    load_tiny(db_schema)
    cfg = make_config(storage={"schema": db_schema.schema + "_dn"},
                      cold_start_recall={"train_days": 3})
    yield db_schema, cfg
    conn = psycopg2.connect(db_schema.base_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop schema if exists "{cfg.storage.schema_}" cascade')
    conn.close()


def rows(url, query):
    with db.transaction(url) as cur:
        cur.execute(query)
        return cur.fetchall()


def test_samples_labels_window_and_point_in_time_features(tiny):
    url, cfg = tiny
    report = samples.build_samples(cfg, BIZDATE, url)
    assert report["train"] == {"samples": 4, "positives": 2}
    assert report["eval"] == {"samples": 2, "positives": 1}
    s = cfg.storage.schema_
    got = rows(url, f"""select sample_date::text, user_id, item_id, is_click, u_clicks_7d,
                               u_ctr_7d, u_click_cate1_14d, i_impressions_7d, i_ctr_7d, i_tags
                        from "{s}".samples order by 1, 2, 3""")
    assert got == [
        # 11-07 lies outside the 3-day window: no sample, but it feeds 11-08's preferences
        ("2026-11-08", "u1", "i1", 0, 1.0, 1.0, "music", 1.0, 1.0, "x|y"),
        # i2 has no behaviour before 11-08: its preference features are NULL (cold)
        ("2026-11-08", "u1", "i2", 1, 1.0, 1.0, "music", None, None, "y"),
        ("2026-11-09", "u1", "i1", 1, 2.0, 2 / 3, "music|sport", 2.0, 0.5, "x|y"),
        # u2 registered on 11-10: a cold user
        ("2026-11-10", "u2", "i2", 0, None, None, None, 1.0, 1.0, "y"),
    ]


def test_new_items_of_the_bizdate_are_held_out_for_evaluation(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    assert rows(url, f'select count(*) from "{s}".samples where item_id = \'i3\'') == [(0,)]
    got = rows(url, f"""select user_id, item_id, is_click, u_clicks_7d, i_impressions_7d
                        from "{s}".eval_samples order by 1""")
    # u1 clicked on 11-07, 11-08 and 11-09 (the 11-10 click is the label, not a feature);
    # u2's click on 11-11 is in the future and labels nothing.
    assert got == [("u1", "i3", 1, 3.0, None), ("u2", "i3", 0, None, None)]


def test_no_future_information_in_preference_features(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    before = rows(url, f'select * from "{cfg.storage.schema_}".samples order by 2, 3, 4')
    # more future behaviour changes nothing of the bizdate's partitions
    with db.transaction(url) as cur:
        cur.execute("""insert into sv_events values
                       ('u2', 'i1', 'impression', '2026-11-12 09:00+00'),
                       ('u2', 'i1', 'click', '2026-11-12 09:01+00')""")
    samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, f'select * from "{cfg.storage.schema_}".samples order by 2, 3, 4') == before


def test_boundaries_are_sorted_distinct_quantiles(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    with db.transaction(url) as cur:
        bounds = samples.load_boundaries(cur, cfg, BIZDATE)
    assert set(bounds) == {f.name for f in cfg.binned_features}
    assert bounds["i_duration"] == sorted(set(bounds["i_duration"]))
    assert bounds["i_duration"][0] == 30.0 and bounds["i_duration"][-1] == 60.0


def test_rerun_replaces_the_partition_and_leaves_other_bizdates(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    samples.build_samples(cfg, BIZDATE - dt.timedelta(days=1), url)
    s = cfg.storage.schema_
    count = f'select dt::text, count(*) from "{s}".samples group by 1 order by 1'
    first = rows(url, count)
    samples.build_samples(cfg, BIZDATE, url)
    samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, count) == first == [("2026-11-09", 4), ("2026-11-10", 4)]


def test_missing_raw_column_is_named_and_nothing_is_written(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    before = rows(url, f'select count(*) from "{s}".samples')
    with db.transaction(url) as cur:
        cur.execute("alter table sv_items rename column topic to subject")
    with pytest.raises(samples.MissingDataError, match=r"raw.items.*no column\(s\) \['topic'\]"):
        samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, f'select count(*) from "{s}".samples') == before


def test_missing_raw_table_is_named(tiny):
    url, cfg = tiny
    with db.transaction(url) as cur:
        cur.execute("drop table sv_authors")
    with pytest.raises(samples.MissingDataError, match="raw.authors: table 'sv_authors' does not exist"):
        samples.build_samples(cfg, BIZDATE, url)


def test_a_bizdate_without_events_is_an_error_that_writes_nothing(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    before = rows(url, f'select dt::text, count(*) from "{s}".samples group by 1')
    with pytest.raises(samples.MissingDataError, match="no training samples for bizdate 2026-10-01"):
        samples.build_samples(cfg, dt.date(2026, 10, 1), url)
    assert rows(url, f'select dt::text, count(*) from "{s}".samples group by 1') == before
