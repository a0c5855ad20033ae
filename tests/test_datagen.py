"""The synthetic data generator, against a real PostgreSQL with pgvector (tiny sizes)."""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
import pytest
from helpers import fetch_all

from dropoutnet.data import synthetic

END = dt.date(2025, 6, 30)
DAYS = 4
NEW_PER_DAY = 10
TINY = dict(n_users=150, n_items=150, n_authors=20, days=DAYS, end_date=END,
            new_items_per_day=NEW_PER_DAY, seed=7)

EXPECTED_COLUMNS = {
    "sv_users": {"user_id": "text", "gender": "text", "age_band": "text", "city": "text",
                 "level": "integer", "register_time": "timestamp with time zone"},
    "sv_authors": {"author_id": "text", "gender": "text", "level": "integer",
                   "is_member": "boolean", "city": "text", "author_type": "text",
                   "fans_count": "bigint", "visitor_count": "bigint", "play_count": "bigint",
                   "like_count": "bigint"},
    "sv_items": {"item_id": "text", "author_id": "text", "primary_type": "text",
                 "title": "text", "duration": "double precision", "source_type": "text",
                 "width": "integer", "height": "integer", "grade_score": "double precision",
                 "topic": "text", "category_level1": "text", "category_level2": "text",
                 "tags": "text[]", "create_time": "timestamp with time zone"},
    "sv_item_text_embedding": {"item_id": "text", "title_embedding": "vector(16)",
                               "tag_embedding": "vector(16)"},
    "sv_events": {"user_id": "text", "item_id": "text", "event_type": "text",
                  "event_time": "timestamp with time zone", "request_id": "text"},
    "sv_oracle_users": {"user_id": "text", "taste": f"vector({synthetic.ORACLE_DIM})"},
    "sv_oracle_items": {"item_id": "text", "latent": f"vector({synthetic.ORACLE_DIM})",
                        "quality": "double precision"},
}


def _checksums(url: str) -> dict[str, tuple[int, str]]:
    out = {}
    for table in synthetic.TABLES:
        (row,) = fetch_all(url, f"select count(*), md5(coalesce(string_agg(t::text, '|' "
                             f"order by t::text), '')) from {table} t")
        out[table] = row
    return out


def _vec(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float64)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.sort(scores[labels]), np.sort(scores[~labels])
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def test_tables_columns_and_types(db_schema):
    summary = synthetic.generate(db_schema, **TINY)
    rows = fetch_all(db_schema, """
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped""",
                  (db_schema.schema,))
    found: dict[str, dict[str, str]] = {}
    for table, column, type_ in rows:
        found.setdefault(table, {})[column] = type_
    assert found == EXPECTED_COLUMNS

    indexes = {r[0] for r in fetch_all(db_schema, "select indexdef from pg_indexes where "
                                               "schemaname = %s and tablename = 'sv_events'",
                                    (db_schema.schema,))}
    for columns in ("event_time", "item_id", "user_id, event_time"):
        assert any(f"({columns})" in d for d in indexes), (columns, indexes)

    for table in synthetic.TABLES:
        (count,), = fetch_all(db_schema, f"select count(*) from {table}")
        assert count == summary["rows"][table] > 0, table
    assert summary["rows"]["sv_users"] == TINY["n_users"]
    assert summary["rows"]["sv_items"] == TINY["n_items"] + DAYS * NEW_PER_DAY
    assert summary["start_date"] == (END - dt.timedelta(days=DAYS - 1)).isoformat()
    assert summary["end_date"] == END.isoformat()
    types = {r[0] for r in fetch_all(db_schema, "select distinct event_type from sv_events")}
    assert types == {"impression", "click", "like", "share"}
    # events lie in the window, after the user registered and after the item was created
    (bad,), = fetch_all(db_schema, """
        select count(*) from sv_events e join sv_users u using (user_id)
        join sv_items i using (item_id)
        where e.event_time < u.register_time or e.event_time < i.create_time
           or (e.event_time at time zone 'UTC')::date not between %s and %s""",
                     (summary["start_date"], summary["end_date"]))
    assert bad == 0
    # some users register inside the window (cold users) and still get impressions
    (cold,), = fetch_all(db_schema, """
        select count(distinct u.user_id) from sv_users u join sv_events e using (user_id)
        where u.register_time >= %s""", (summary["start_date"],))
    assert cold > 0


def test_same_seed_same_data(db_schema):
    first = synthetic.generate(db_schema, **TINY)
    sums = _checksums(db_schema)
    second = synthetic.generate(db_schema, **TINY)
    assert first["rows"] == second["rows"]
    assert _checksums(db_schema) == sums
    synthetic.generate(db_schema, **{**TINY, "seed": 8})
    assert _checksums(db_schema)["sv_events"] != sums["sv_events"]


def test_new_items_every_day_get_same_day_impressions(db_schema):
    synthetic.generate(db_schema, **TINY)
    per_day = dict(fetch_all(db_schema, """
        select (create_time at time zone 'UTC')::date, count(*) from sv_items
        where create_time >= %s group by 1""", (END - dt.timedelta(days=DAYS - 1),)))
    window = [END - dt.timedelta(days=k) for k in range(DAYS)]
    assert per_day == {day: NEW_PER_DAY for day in window}
    (missing,), = fetch_all(db_schema, """
        select count(*) from sv_items i where i.create_time >= %s and not exists (
            select 1 from sv_events e where e.item_id = i.item_id
              and e.event_type = 'impression' and e.event_time >= i.create_time
              and (e.event_time at time zone 'UTC')::date
                  = (i.create_time at time zone 'UTC')::date)""", (min(window),))
    assert missing == 0
    # same-day new items take a sizeable share of each day's impressions
    shares = fetch_all(db_schema, """
        select (e.event_time at time zone 'UTC')::date,
               avg(((i.create_time at time zone 'UTC')::date
                    = (e.event_time at time zone 'UTC')::date)::int)
        from sv_events e join sv_items i using (item_id)
        where e.event_type = 'impression' group by 1""")
    assert len(shares) == DAYS
    assert all(0.15 < float(s) < 0.6 for _, s in shares), shares


def test_clicks_likes_shares_follow_impressions_and_clicks(db_schema):
    synthetic.generate(db_schema, **TINY)
    orphans = dict(fetch_all(db_schema, """
        select e.event_type, count(*) from sv_events e
        where e.event_type <> 'impression' and not exists (
            select 1 from sv_events p
            where p.user_id = e.user_id and p.item_id = e.item_id
              and p.event_type = case when e.event_type = 'click' then 'impression'
                                      else 'click' end
              and p.event_time <= e.event_time
              and (p.event_time at time zone 'UTC')::date
                  = (e.event_time at time zone 'UTC')::date)
        group by 1"""))
    assert orphans == {}
    (dupes,), = fetch_all(db_schema, """
        select count(*) from (select 1 from sv_events
        group by user_id, item_id, event_type, (event_time at time zone 'UTC')::date
        having count(*) > 1) d""")
    assert dupes == 0


def test_oracle_separates_clicks(db_schema):
    synthetic.generate(db_schema, **TINY)
    rows = fetch_all(db_schema, """
        select ou.taste::text, oi.latent::text, oi.quality,
               exists (select 1 from sv_events c where c.event_type = 'click'
                         and c.user_id = e.user_id and c.item_id = e.item_id
                         and (c.event_time at time zone 'UTC')::date
                             = (e.event_time at time zone 'UTC')::date)
        from sv_events e join sv_oracle_users ou using (user_id)
        join sv_oracle_items oi using (item_id)
        where e.event_type = 'impression'""")
    taste = np.stack([_vec(r[0]) for r in rows])
    latent = np.stack([_vec(r[1]) for r in rows])
    quality = np.array([r[2] for r in rows])
    clicked = np.array([r[3] for r in rows])
    assert 0.04 < clicked.mean() < 0.25
    logit = synthetic.oracle_scores(taste, latent, quality)
    assert np.allclose(logit, np.einsum("nd,nd->n", taste, latent) + quality)
    assert _auc(logit, clicked) > 0.7
    # the text embeddings carry the item signal: similar latents, similar title embeddings
    emb = fetch_all(db_schema, """select oi.latent::text, t.title_embedding::text
                               from sv_oracle_items oi join sv_item_text_embedding t
                               using (item_id) order by item_id""")
    lat = np.stack([_vec(a) for a, _ in emb])
    title = np.stack([_vec(b) for _, b in emb])
    i, j = np.triu_indices(len(lat), 1)
    corr = np.corrcoef(np.einsum("nd,nd->n", lat[i], lat[j]),
                       np.einsum("nd,nd->n", title[i], title[j]))[0, 1]
    assert corr > 0.5


def test_failed_generate_keeps_previous_tables(db_schema, monkeypatch):
    synthetic.generate(db_schema, **TINY)
    before = _checksums(db_schema)

    with pytest.raises(ValueError, match="days"):
        synthetic.generate(db_schema, **{**TINY, "days": 0})
    with pytest.raises(ValueError, match="registration_growth must be between"):
        synthetic.generate(db_schema, **{**TINY, "registration_growth": 0.0})
    assert _checksums(db_schema) == before

    real_copy = synthetic._copy

    def failing_copy(cur, table, columns):
        if table.endswith("sv_events"):  # after users, authors and items were reloaded
            raise RuntimeError("disk full (simulated)")
        return real_copy(cur, table, columns)

    monkeypatch.setattr(synthetic, "_copy", failing_copy)
    with pytest.raises(RuntimeError, match="simulated"):
        synthetic.generate(db_schema, **{**TINY, "seed": 99, "n_users": 50})
    assert _checksums(db_schema) == before


def test_registrations_per_day_add_up_and_grow():
    assert synthetic.registrations_per_day(150, 4, 0.2, 1.0).tolist() == [8, 8, 7, 7]
    assert synthetic.registrations_per_day(200, 4, 0.5, 2.0).tolist() == [7, 13, 27, 53]
    assert synthetic.registrations_per_day(50, 3, 0.0, 2.0).tolist() == [0, 0, 0]
    # no overflow at the extremes: all on the last (first) day
    assert synthetic.registrations_per_day(10, 366, 1.0, 10.0)[-1] == 9
    assert synthetic.registrations_per_day(10, 366, 1.0, 0.1)[0] == 9
    campaign = synthetic.registrations_per_day(3600, 21, 0.5, 2.0)
    assert campaign.sum() == 1800 and campaign[-1] == 900


def test_registrations_follow_cold_share_and_growth(db_schema):
    """Each window day gets exactly ``registrations_per_day`` new users, and they are active."""
    sizes = {**TINY, "n_users": 200, "cold_user_share": 0.5, "registration_growth": 2.0}
    synthetic.generate(db_schema, **sizes)
    start = END - dt.timedelta(days=DAYS - 1)
    per_day = dict(fetch_all(db_schema, """
        select (register_time at time zone 'UTC')::date, count(*) from sv_users
        where register_time >= %s group by 1""", (start,)))
    expected = [7, 13, 27, 53]
    assert per_day == {start + dt.timedelta(days=d): n for d, n in enumerate(expected)}
    (before,), = fetch_all(db_schema, "select count(*) from sv_users where register_time < %s",
                           (start,))
    assert before == 100
    # the last day's registrants are that day's cold users: many of them get impressions
    (active,), = fetch_all(db_schema, """
        select count(distinct e.user_id) from sv_events e join sv_users u using (user_id)
        where (u.register_time at time zone 'UTC')::date = %s""", (END,))
    assert active > 0.4 * expected[-1]


def _share_on_recent_items(url: str) -> float:
    """Of the impressions of items older than the day, the share on the two previous days'."""
    (share,), = fetch_all(url, """
        select avg((day - (i.create_time at time zone 'UTC')::date <= 2)::int)
        from (select item_id, (event_time at time zone 'UTC')::date as day from sv_events
              where event_type = 'impression') e
        join sv_items i using (item_id)
        where (i.create_time at time zone 'UTC')::date < day""")
    return float(share)


def test_freshness_days_puts_the_feed_on_recent_items(db_schema):
    sizes = {**TINY, "days": 8}
    synthetic.generate(db_schema, **sizes)
    slow = _share_on_recent_items(db_schema)
    synthetic.generate(db_schema, **sizes, freshness_days=2.0)
    fast = _share_on_recent_items(db_schema)
    assert slow < 0.35 < 0.5 < fast, (slow, fast)


@pytest.mark.parametrize("name, value, message", [
    ("cold_user_share", 1.5, "cold_user_share must be between 0.0 and 1.0, got 1.5"),
    ("cold_user_share", float("nan"), "cold_user_share must be between 0.0 and 1.0, got nan"),
    ("registration_growth", 0.0, "registration_growth must be between 0.1 and 10.0"),
    ("freshness_days", -1, "freshness_days must be between 0.1 and 1000.0"),
    ("freshness_days", "2", "freshness_days must be a number, got '2'"),
])
def test_generate_rejects_bad_shape(name, value, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate("postgresql://unused", **{**TINY, name: value})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synthetic.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_defaults_and_run(db_schema):
    args = _args()
    assert (args.users, args.items, args.authors, args.days, args.new_items_per_day,
            args.seed, args.end_date) == (2000, 3000, 300, 21, 150, 42, None)
    assert (args.cold_user_share, args.registration_growth, args.freshness_days) == (
        0.2, 1.0, 20.0)
    summary = synthetic.run_from_args(
        _args("--users", "40", "--items", "30", "--authors", "5", "--days", "2",
              "--new-items-per-day", "3", "--end-date", "2025-01-31", "--seed", "1",
              "--cold-user-share", "0.5", "--registration-growth", "3",
              "--freshness-days", "2"),
        db_schema)
    assert summary["start_date"] == "2025-01-30" and summary["end_date"] == "2025-01-31"
    assert summary["rows"]["sv_items"] == 36
    registered = dict(fetch_all(db_schema, """
        select (register_time at time zone 'UTC')::date::text, count(*) from sv_users
        where register_time >= '2025-01-30' group by 1"""))
    assert registered == {"2025-01-30": 5, "2025-01-31": 15}
    (n,), = fetch_all(db_schema, "select count(*) from sv_events")
    assert n == summary["rows"]["sv_events"] > 0


@pytest.mark.parametrize("argv, message", [
    (("--end-date", "2025-02-30"), "'2025-02-30' is not a real date"),
    (("--end-date", "yesterday"), "'yesterday' is not a real date"),
    (("--end-date", "2999-01-01"), "end date 2999-01-01 is after today"),
    (("--days", "0"), "--days must be between 1"),
    (("--users", "-5"), "--users must be between 1"),
    (("--new-items-per-day", "-1"), "--new-items-per-day must be between 0"),
    (("--cold-user-share", "1.01"), "--cold-user-share must be between 0.0 and 1.0"),
    (("--cold-user-share", "nan"), "--cold-user-share must be between 0.0 and 1.0, got nan"),
    (("--registration-growth", "0"), "--registration-growth must be between 0.1 and 10.0"),
    (("--freshness-days", "inf"), "--freshness-days must be between 0.1 and 1000.0"),
])
def test_cli_rejects_bad_input(argv, message):
    with pytest.raises(ValueError, match=message):
        synthetic.run_from_args(_args(*argv), "postgresql://unused")


def test_cli_rejects_a_shape_that_is_not_a_number(capsys):
    with pytest.raises(SystemExit):
        _args("--registration-growth", "fast")
    err = capsys.readouterr().err
    assert "argument --registration-growth: invalid float value: 'fast'" in err


def test_end_date_default_is_yesterday_utc():
    today = dt.date(2026, 3, 1)
    assert synthetic.parse_end_date(None, today=today) == dt.date(2026, 2, 28)
    assert synthetic.parse_end_date("2026-03-01", today=today) == today


def test_oracle_scores_shapes():
    rng = np.random.default_rng(0)
    taste, latent, quality = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=5)
    matrix = synthetic.oracle_scores(taste, latent, quality)
    assert matrix.shape == (3, 5)
    assert np.allclose(matrix[1, 2], taste[1] @ latent[2] + quality[2])
    assert np.allclose(synthetic.oracle_scores(taste[0], latent, quality), matrix[0])
    pairs = synthetic.oracle_scores(taste, latent[:3], quality[:3])
    assert np.allclose(pairs, [taste[k] @ latent[k] + quality[k] for k in range(3)])
    assert synthetic.auc(np.array([0.1, 0.9, 0.5]), np.array([0, 1, 0])) == 1.0
