"""The sample templates on a tiny hand-checked dataset in the real (embedded) Postgres."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from helpers import make_config

from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import partitions
from dropoutnet.steps import samples

BIZDATE = dt.date(2026, 11, 10)


def rows(url, query):
    with db.transaction(url) as cur:
        cur.execute(query)
        return cur.fetchall()


def test_samples_labels_window_and_point_in_time_features(tiny):
    url, cfg = tiny
    report = samples.build_samples(cfg, BIZDATE, url)
    assert report["train"] == {"samples": 3, "positives": 2}
    assert report["eval"] == {"cold_items": {"samples": 1, "positives": 1},
                              "cold_both": {"samples": 1, "positives": 0},
                              "cold_users": {"samples": 1, "positives": 0}}
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
        # u2 registered on 11-10: a cold user, whose (u2, i2) is held out (cold_users split)
    ]


@pytest.mark.parametrize("selection, labels", [
    # `%` is a LIKE wildcard here, not a bind parameter marker of the driver
    ("max(case when event_type like 'cl%' then 1 else 0 end)", [0, 1, 1, 1, 0, 0]),
    ("max(case when event_type like '%sion' then 1 else 0 end)", [1, 1, 1, 1, 1, 1]),
])
def test_a_label_selection_with_percent_signs(tiny, selection, labels):
    url, cfg = tiny
    cfg = make_config(storage={"schema": cfg.storage.schema_},
                      cold_start_recall={"train_days": 3, "label": {"selection": selection}})
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    got = rows(url, f"""select sample_date::text, user_id, item_id, is_click from "{s}".samples
                        union all
                        select sample_date::text, user_id, item_id, is_click
                        from "{s}".eval_samples
                        order by 1, 2, 3""")
    keys = [("2026-11-08", "u1", "i1"), ("2026-11-08", "u1", "i2"), ("2026-11-09", "u1", "i1"),
            ("2026-11-10", "u1", "i3"), ("2026-11-10", "u2", "i2"), ("2026-11-10", "u2", "i3")]
    assert got == [(*key, label) for key, label in zip(keys, labels)]


def test_new_items_of_the_bizdate_are_held_out_for_evaluation(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    assert rows(url, f'select count(*) from "{s}".samples where item_id = \'i3\'') == [(0,)]
    got = rows(url, f"""select split, user_id, item_id, is_click, u_clicks_7d, i_impressions_7d
                        from "{s}".eval_samples order by 1, 2, 3""")
    # u1 clicked on 11-07, 11-08 and 11-09 (the 11-10 click is the label, not a feature);
    # u2's click on 11-11 is in the future and labels nothing.
    assert got == [("cold_both", "u2", "i3", 0, None, None),  # a new user and a new item
                   ("cold_items", "u1", "i3", 1, 3.0, None),
                   # u2 has no event before 11-10: its exposure of the older i2 is a cold user's
                   ("cold_users", "u2", "i2", 0, None, 1.0)]


def _held_out(user: str, bizdate: dt.date, share: float) -> bool:
    """data/samples.sql's holdout hash, recomputed: the first 32 bits of md5(user/bizdate)."""
    digest = hashlib.md5(f"{user}/{bizdate.isoformat()}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < share


def test_eval_splits_hold_out_cold_users_and_a_stable_share_of_warm_users(tiny):
    url, cfg = tiny
    cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(
        update={"warm_holdout_share": 0.5})})
    # twenty returning users who saw i1 on 11-09 and i1/i2 on 11-10; w00 was last seen on
    # 11-01, before the training window: still a returning user, not a cold one
    returning = [f"w{k:02d}" for k in range(20)]
    with db.transaction(url) as cur:
        for user in returning:
            first = "2026-11-01 09:00+00" if user == "w00" else "2026-11-09 09:00+00"
            cur.execute("insert into sv_users values (%s, 'f', '18-24', 'hz', 1, "
                        "'2026-10-01 00:00+00')", (user,))
            cur.execute("""insert into sv_events values
                           (%(u)s, 'i1', 'impression', %(first)s),
                           (%(u)s, 'i1', 'impression', '2026-11-10 09:00+00'),
                           (%(u)s, 'i1', 'click', '2026-11-10 09:01+00'),
                           (%(u)s, 'i2', 'impression', '2026-11-10 09:05+00')""",
                        {"u": user, "first": first})
    held = {u for u in returning if _held_out(u, BIZDATE, 0.5)}
    assert 0 < len(held) < len(returning)  # the hash splits them (fixed data: stable)

    report = samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    warm = rows(url, f"""select user_id, item_id, is_click from "{s}".eval_samples
                         where split = 'warm_items' order by 1, 2""")
    assert warm == [(u, i, c) for u in sorted(held) for i, c in (("i1", 1), ("i2", 0))]
    assert report["eval"]["warm_items"] == {"samples": 2 * len(held), "positives": len(held)}
    assert rows(url, f"""select distinct user_id from "{s}".eval_samples
                         where split = 'cold_users'""") == [("u2",)]
    # nothing held out is trained on; everything else of the bizdate is
    trained = {u for (u,) in rows(url, f"""select distinct user_id from "{s}".samples
                                           where sample_date = '2026-11-10'""")}
    assert trained == set(returning) - held
    # a rerun holds out the same users
    samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, f"""select user_id, item_id, is_click from "{s}".eval_samples
                         where split = 'warm_items' order by 1, 2""") == warm


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
        bounds = partitions.load_boundaries(cur, cfg, BIZDATE)
    assert set(bounds) == {f.name for f in cfg.binned_features}
    assert bounds["i_duration"] == sorted(set(bounds["i_duration"]))
    # training durations 30, 60, 30: the deciles 0.1 .. 0.5 tie at 30, then 36 .. 54
    assert bounds["i_duration"] == pytest.approx([30.0, 36.0, 42.0, 48.0, 54.0])


def test_rerun_replaces_the_partition_and_leaves_other_bizdates(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    samples.build_samples(cfg, BIZDATE - dt.timedelta(days=1), url)
    s = cfg.storage.schema_
    count = f'select dt::text, count(*) from "{s}".samples group by 1 order by 1'
    first = rows(url, count)
    samples.build_samples(cfg, BIZDATE, url)
    samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, count) == first == [("2026-11-09", 4), ("2026-11-10", 3)]


def test_missing_raw_column_is_named_and_nothing_is_written(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    before = rows(url, f'select count(*) from "{s}".samples')
    with db.transaction(url) as cur:
        cur.execute("alter table sv_items rename column topic to subject")
    with pytest.raises(MissingDataError, match=r"raw.items.*no column\(s\) \['topic'\]"):
        samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, f'select count(*) from "{s}".samples') == before


def test_vector_feature_of_the_wrong_dimension_is_named_and_nothing_is_written(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    before = rows(url, f'select count(*) from "{s}".samples')
    data = cfg.model_dump(by_alias=True)
    index = next(i for i, f in enumerate(data["features"]) if f["name"] == "i_title_emb")
    data["features"][index]["dim"] = 8
    wrong = type(cfg).model_validate(data)
    with pytest.raises(MissingDataError,
                       match=rf"features.{index}.dim: feature 'i_title_emb' has dim 8 but its "
                             r"source item_text.title_embedding is vector\(16\); set dim: 16"):
        samples.build_samples(wrong, BIZDATE, url)
    assert rows(url, f'select count(*) from "{s}".samples') == before


def test_age_feature_is_days_since_creation_at_the_samples_day(tiny):
    url, cfg = tiny
    data = cfg.model_dump(by_alias=True)
    data["features"].append({"name": "i_age_days", "group": "item_content", "kind": "numeric",
                             "source": "items.create_time", "age": True})
    cfg = type(cfg).model_validate(data)
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    assert rows(url, f'select sample_date::text, item_id, i_age_days from "{s}".samples '
                     'order by 1, 2') == [
        ("2026-11-08", "i1", 7.0), ("2026-11-08", "i2", 3.0), ("2026-11-09", "i1", 8.0)]
    # the bizdate's new item is 0 days old, as it is when embedded for retrieval
    assert rows(url, f'select distinct i_age_days from "{s}".eval_samples '
                     "where item_id = 'i3'") == [(0.0,)]


def test_missing_raw_table_is_named(tiny):
    url, cfg = tiny
    with db.transaction(url) as cur:
        cur.execute("drop table sv_authors")
    with pytest.raises(MissingDataError, match="raw.authors: table 'sv_authors' does not exist"):
        samples.build_samples(cfg, BIZDATE, url)


def test_a_bizdate_without_events_is_an_error_that_writes_nothing(tiny):
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    s = cfg.storage.schema_
    before = rows(url, f'select dt::text, count(*) from "{s}".samples group by 1')
    with pytest.raises(MissingDataError, match="no training samples for bizdate 2026-10-01"):
        samples.build_samples(cfg, dt.date(2026, 10, 1), url)
    assert rows(url, f'select dt::text, count(*) from "{s}".samples group by 1') == before


def test_sampled_negatives_are_untouched_existing_items_and_deterministic(tiny):
    url, _ = tiny
    # a catalogue to draw from: ten items of 11-01, one created late on 11-08, one on the
    # bizdate (a cold item: never drawn), one in the future, one without a create time
    extra = [(f"c{k}", "2026-11-01 08:00+00") for k in range(10)] + [
        ("late8", "2026-11-08 23:00+00"), ("new10", "2026-11-10 07:00+00"),
        ("future", "2026-11-20 07:00+00"), ("undated", None)]
    with db.transaction(url) as cur:
        for item, created in extra:
            cur.execute("""insert into sv_items (item_id, author_id, primary_type, title, duration,
                               source_type, grade_score, topic, category_level1, category_level2,
                               tags, create_time)
                           values (%s, 'a1', 'video', 't', 10, 'app', 0.5, 'fun', 'music',
                                   'music/pop', '{z}', %s)""", (item, created))
            cur.execute("insert into sv_item_text_embedding select %s, title_embedding, "
                        "tag_embedding from sv_item_text_embedding where item_id = 'i1'", (item,))
        # u3 touches four catalogue items on 11-09: never drawn for u3 that day
        for item in ("c0", "c1", "c2", "c3"):
            cur.execute("insert into sv_events values ('u3', %s, 'impression', "
                        "'2026-11-09 12:00+00')", (item,))
        cur.execute("insert into sv_users values ('u3', 'f', '18-24', 'hz', 1, "
                    "'2026-10-01 00:00+00')")
    plain = make_config(storage={"schema": url.schema + "_dn"},
                        cold_start_recall={"train_days": 3})
    samples.build_samples(plain, BIZDATE, url)
    s = plain.storage.schema_
    columns = "sample_date::text, user_id, item_id, is_click, u_clicks_7d, i_impressions_7d, i_tags"
    real = rows(url, f'select {columns} from "{s}".samples order by 1, 2, 3')
    real_eval = rows(url, f'select * from "{s}".eval_samples order by 2, 3, 4, 5')

    cfg = make_config(storage={"schema": url.schema + "_dn"},
                      cold_start_recall={"train_days": 3},
                      samples={"sampled_negatives": {"per_user_day": 3}})
    report = samples.build_samples(cfg, BIZDATE, url)
    everything = rows(url, f'select {columns} from "{s}".samples order by 1, 2, 3')
    negatives = sorted(set(everything) - set(real))
    # the real samples and the eval partition are untouched; negatives add label-0 rows
    assert set(real) <= set(everything) and len(everything) == len(real) + len(negatives)
    assert rows(url, f'select * from "{s}".eval_samples order by 2, 3, 4, 5') == real_eval
    assert report["train"]["positives"] == sum(r[3] for r in real)
    assert negatives and all(r[3] == 0 for r in negatives)
    # per_user_day per (user, day) with an exposure before the bizdate; none on the bizdate
    per_day = {}
    for day, user, item, *_ in negatives:
        per_day.setdefault((day, user), []).append(item)
    assert per_day.keys() == {("2026-11-08", "u1"), ("2026-11-09", "u1"), ("2026-11-09", "u3")}
    assert all(len(items) == 3 == len(set(items)) for items in per_day.values())
    created = dict(rows(url, "select item_id, create_time::date::text from sv_items"))
    touched = set(rows(url, "select event_time::date::text, user_id, item_id from sv_events"))
    for (day, user), items in per_day.items():
        for item in items:
            assert created[item] is not None and created[item] <= day, (day, item)
            assert created[item] != BIZDATE.isoformat()
            assert (day, user, item) not in touched, (day, user, item)
    # features are joined point in time, as for a real sample of that user and day
    user_feature = {(r[0], r[1]): r[4] for r in real}
    assert all(r[4] == user_feature[(r[0], r[1])] for r in negatives)
    tags = dict(rows(url, "select item_id, array_to_string(tags, '|') from sv_items"))
    assert all(r[6] == tags[r[2]] for r in negatives)
    impressions = rows(url, "select item_id, event_time::date from sv_events "
                            "where event_type = 'impression'")
    for day, _, item, _, _, i_impressions, _ in negatives:
        as_of = dt.date.fromisoformat(day)
        n = sum(1 for i, d in impressions
                if i == item and as_of - dt.timedelta(days=7) <= d < as_of)
        assert i_impressions == (n or None), (day, item)  # NULL: no behaviour yet (cold)
    # a rerun writes the same rows; another seed draws other items
    samples.build_samples(cfg, BIZDATE, url)
    assert rows(url, f'select {columns} from "{s}".samples order by 1, 2, 3') == everything
    other = cfg.model_copy(update={"samples": make_config(
        samples={"sampled_negatives": {"per_user_day": 3, "seed": 1}}).samples})
    samples.build_samples(other, BIZDATE, url)
    assert rows(url, f'select {columns} from "{s}".samples order by 1, 2, 3') != everything
