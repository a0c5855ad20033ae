"""Recall of the active version: the Python function, `dropoutnet recall` and GET /v1/recall.

One published version is written straight into the embedding store (3000 item vectors with
filterable values, a few user vectors; no model needed: recall only reads vectors), so every
answer can be checked against the exact one computed in numpy from the same float32s.
The API runs under a real uvicorn server on a free port, over real HTTP, as in
test_serving.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg2
import psycopg2.extras
import pytest
from helpers import ThreadedServer, load_tiny, make_config, publish_vectors, write_config

from dropoutnet import cli
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.recall import retrieval, vectors
from dropoutnet.recall.retrieval import (
    RecallError,
    RecallNotFound,
    UnknownFilterValue,
    recall,
    top_items,
)

BIZDATE = dt.date(2026, 11, 10)
VERSION = "20261110"
N_ITEMS = 3000
USERS = ["u1", "u2", "u3", "u4", "u5"]


def category(k: int) -> str:
    """1 % rare (30 items), 30 % mid, the rest common."""
    return "rare" if k % 100 == 7 else "mid" if k % 10 < 3 else "common"


def primary_type(k: int) -> str:
    """A third video, the rest live (10 of the rare items are videos)."""
    return "video" if k % 3 == 0 else "live"


@pytest.fixture(scope="module")
def store(database_url):
    """The tiny raw tables and a published, active version of random vectors; yields a dict
    with ``cfg``, ``url``, the items' ``ids``, ``vectors``, ``attrs``, ``created`` and the
    users' ``users`` vectors."""
    name = f"rcl_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create schema {name}")
    url = f"{database_url}&options=-csearch_path%3D{name},public"
    load_tiny(url)
    cfg = make_config(storage={"schema": f"{name}_dn"},
                      cold_start_recall={"train_days": 3, "model_name": f"m_{name}"})
    assert cfg.retrieval.filter_columns == ["category_level1", "primary_type"]

    rng = np.random.default_rng(11)
    dim = cfg.vector_dim
    item_vectors = rng.normal(size=(N_ITEMS, dim)).astype(np.float32)
    user_vectors = rng.normal(size=(len(USERS), dim)).astype(np.float32)
    ids = [f"it{k:04d}" for k in range(N_ITEMS)]
    now = dt.datetime.now(dt.timezone.utc)
    day0 = dt.datetime(2026, 11, 8, tzinfo=dt.timezone.utc)
    # 2 % created an hour ago (the stream's new items), the rest over the candidate window
    created = [now - dt.timedelta(hours=1) if k % 50 == 3
               else day0 + dt.timedelta(minutes=k) for k in range(N_ITEMS)]
    attrs = [{"category_level1": category(k), "primary_type": primary_type(k)}
             for k in range(N_ITEMS)]
    publish(url, cfg, list(zip(ids, created, attrs)), item_vectors, user_vectors)
    yield {"cfg": cfg, "url": url, "ids": ids, "vectors": item_vectors, "attrs": attrs,
           "created": created, "users": dict(zip(USERS, user_vectors)), "schema": name,
           "admin": admin}
    with admin.cursor() as cur:
        cur.execute(f"drop schema {name} cascade; drop schema {name}_dn cascade")
    admin.close()


def publish(url: str, cfg, item_rows: list[tuple], item_vectors: np.ndarray,
            user_vectors: np.ndarray) -> None:
    """Write ``VERSION``'s vectors as the embedding tasks do, publish and activate it."""
    publish_vectors(url, cfg, VERSION, BIZDATE, item_rows, item_vectors, USERS, user_vectors)


@pytest.fixture(scope="module")
def halfvec_store(store):
    """The same version stored as ``halfvec`` (storage.vector_type) in a schema of its own:
    ``store`` with that ``cfg`` and, as ``vectors`` and ``users``, the float16 roundings of
    the model's vectors (``float32``: the values the tables hold); ``float32`` is ``store``."""
    name = f"{store['schema']}_hv"
    cfg = make_config(storage={"schema": name, "vector_type": "halfvec"},
                      cold_start_recall={"train_days": 3, "model_name": f"m_{name}"})
    publish(store["url"], cfg, list(zip(store["ids"], store["created"], store["attrs"])),
            store["vectors"], np.array([store["users"][u] for u in USERS]))

    def half(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float16).astype(np.float32)

    yield {**store, "cfg": cfg, "vectors": half(store["vectors"]),
           "users": {u: half(v) for u, v in store["users"].items()}, "float32": store}
    with store["admin"].cursor() as cur:
        cur.execute(f"drop schema {name} cascade")


def exact(store, user: str, n: int, keep=lambda k: True) -> list[tuple[str, float]]:
    """The exact top-n in numpy over the items ``keep`` accepts (by index)."""
    scores = store["vectors"] @ store["users"][user]
    order = [k for k in np.argsort(-scores, kind="stable") if keep(k)][:n]
    return [(store["ids"][k], float(scores[k])) for k in order]


def assert_same(got: list, want: list[tuple[str, float]]) -> None:
    ids = [g["item_id"] if isinstance(g, dict) else g[0] for g in got]
    scores = [g["score"] if isinstance(g, dict) else g[1] for g in got]
    assert ids == [w[0] for w in want]
    np.testing.assert_allclose(scores, [w[1] for w in want], rtol=1e-5, atol=1e-5)


@contextlib.contextmanager
def index_only(store):
    """A cursor whose planner may not scan the table, a bitmap index or sort: every recall
    query runs as an HNSW index scan (or, for the exact fallback, as the plan it has to use).
    Left to itself, the planner answers a rare filter on this small table exactly (an index
    or GIN scan and a sort), which is right, but would not exercise the HNSW scan."""
    conn = db.connect(store["url"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("set local enable_seqscan = off; set local enable_bitmapscan = off; "
                        "set local enable_sort = off")
            yield cur
    finally:
        conn.close()


def retrieve(cur, store, user: str, n: int = 10, explain: bool = False, **context) -> list:
    """retrieve.sql with ``context`` (filters as in :func:`top_items`), or its EXPLAIN."""
    params = {"user_vector": store["users"][user], "model_version": VERSION, "top_n": n,
              "created_from": None, "created_to": None, "excluded": ["it0000"],
              "attributes": psycopg2.extras.Json({"category_level1": "mid"})}
    text = sql.render("recall/retrieve.sql", schema=store["cfg"].storage.schema_,
                      table="item_embeddings", vector_type=store["cfg"].storage.vector_type, **{
                          "created_range": False, "filtered": False, "excluding": False,
                          "exact": False, **context})
    cur.execute(("explain " if explain else "") + text, params)
    return cur.fetchall()


def plan(cur, store, user: str, **context) -> str:
    return "\n".join(r[0] for r in retrieve(cur, store, user, explain=True, **context))


def exact_in_postgres(cur, store, user: str, n: int) -> list[tuple[str, float]]:
    """The exact top-n by Postgres: ordered by the computed score, which the HNSW index
    cannot serve.  (``enable_indexscan = off`` is not enough on PostgreSQL 18: through the
    partitioned parent the planner still picks the disabled index scan.)"""
    return retrieve(cur, store, user, n, exact=True)


# --- the answer ----------------------------------------------------------------------------


def test_the_hnsw_answer_equals_the_exact_answer_at_a_high_ef_search(store):
    cfg = store["cfg"]
    with index_only(store) as cur:
        assert "Index Scan using" in plan(cur, store, "u1")
        for user in USERS:
            got = recall(cfg, user, 50, ef_search=1000, cur=cur)
            assert got["model_version"] == VERSION and got["user_id"] == user
            assert_same(got["items"], exact(store, user, 50))
            # the exact scan in Postgres (ordered by the computed score: no index) agrees too
            assert_same(exact_in_postgres(cur, store, user, 50), exact(store, user, 50))
        assert "_embedding_idx" not in plan(cur, store, "u1", exact=True)
    # on its own connection, with the planner's own choice: the same answer
    assert_same(recall(cfg, "u2", 20, url=store["url"], ef_search=1000)["items"],
                exact(store, "u2", 20))


def test_recall_over_halfvec_equals_the_exact_answer_of_the_stored_float16s(halfvec_store):
    """With storage.vector_type halfvec the tables hold the float16 roundings of the model's
    vectors, the index is halfvec_ip_ops, and recall at a high ef_search is the exact answer
    over those values (the exact fallback's too); it stays close to the float32 answer."""
    hv = halfvec_store
    cfg = hv["cfg"]
    with index_only(hv) as cur:
        assert "Index Scan using" in plan(cur, hv, "u1")
        cur.execute("select indexdef from pg_indexes where schemaname = %s and indexdef "
                    "like %s", (cfg.storage.schema_, "%hnsw%"))
        assert "halfvec_ip_ops" in cur.fetchone()[0]
        np.testing.assert_array_equal(retrieval.user_vector(cur, cfg, VERSION, "u1"),
                                      hv["users"]["u1"])
        for user in USERS:
            want = exact(hv, user, 50)
            assert_same(recall(cfg, user, 50, ef_search=1000, cur=cur)["items"], want)
            assert_same(exact_in_postgres(cur, hv, user, 50), want)
            float32 = {i for i, _ in exact(hv["float32"], user, 50)}
            assert len(float32 & {i for i, _ in want}) >= 45
        rare = {"category_level1": "rare"}
        want = exact(hv, "u3", 20, lambda k: hv["attrs"][k]["category_level1"] == "rare")
        assert_same(recall(cfg, "u3", 20, filters=rare, ef_search=1000, cur=cur)["items"], want)


def test_the_filters_run_inside_the_hnsw_scan(store):
    with index_only(store) as cur:
        text = plan(cur, store, "u1", filtered=True, excluding=True)
    assert "Index Scan using" in text and "_embedding_idx" in text, text
    assert "attributes @>" in text and "<> ALL" in text, text


@pytest.mark.parametrize("filters, n, keep", [
    ({"category_level1": "mid"}, 50, lambda a: a["category_level1"] == "mid"),
    # 1 % of the items: the iterative scan must not stop at the ef_search nearest
    ({"category_level1": "rare"}, 20, lambda a: a["category_level1"] == "rare"),
    ({"category_level1": "rare", "primary_type": "live"}, 10,
     lambda a: a["category_level1"] == "rare" and a["primary_type"] == "live"),
])
@pytest.mark.parametrize("mode", ["strict_order", "relaxed_order"])
def test_each_filter_is_honoured_and_still_returns_n_items(store, filters, n, keep, mode):
    cfg, attrs = store["cfg"], store["attrs"]
    hnsw = cfg.retrieval.hnsw.model_copy(update={"iterative_scan": mode})
    cfg = cfg.model_copy(update={"retrieval": cfg.retrieval.model_copy(update={"hnsw": hnsw})})
    want = exact(store, "u3", n, lambda k: keep(attrs[k]))
    assert len(want) == n  # enough items pass
    by_id = dict(zip(store["ids"], attrs))
    with index_only(store) as cur:
        # the default ef_search: N items, every one passing the filter
        got = recall(cfg, "u3", n, filters=filters, cur=cur)["items"]
        assert len(got) == n and all(keep(by_id[i["item_id"]]) for i in got)
        # a high ef_search: the exact answer
        assert_same(recall(cfg, "u3", n, filters=filters, ef_search=1000, cur=cur)["items"],
                    want)
    # the planner's own choice (HNSW or the GIN index): the same items
    assert_same(recall(cfg, "u3", n, url=store["url"], filters=filters,
                       ef_search=1000)["items"], want)


def test_created_within_keeps_only_the_newest_items_and_returns_n(store):
    cfg, created = store["cfg"], store["created"]
    recent = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
    want = exact(store, "u4", 20, lambda k: created[k] > recent)
    with index_only(store) as cur:
        got = recall(cfg, "u4", 20, created_within_hours=2, ef_search=1000, cur=cur)
    assert_same(got["items"], want)
    got = recall(cfg, "u4", 20, created_within_hours=2, url=store["url"])["items"]
    assert len(got) == 20 and {i["item_id"] for i in got} <= {i for i, _ in exact(
        store, "u4", N_ITEMS, lambda k: created[k] > recent)}


def test_a_starved_iterative_scan_is_completed_by_the_exact_scan(store):
    """pgvector's iterative scan gives up after hnsw.max_scan_tuples (then returns what it
    visited); with a tiny limit and ef_search the rare category (1 %) comes back short from
    the index, and recall still returns N, the exact ones."""
    cfg = store["cfg"].model_copy(update={"retrieval": store["cfg"].retrieval.model_copy(
        update={"hnsw": store["cfg"].retrieval.hnsw.model_copy(
            update={"max_scan_tuples": 1})})})
    rare = {"category_level1": "rare"}
    want = exact(store, "u5", 20, lambda k: store["attrs"][k]["category_level1"] == "rare")
    with index_only(store) as cur:
        starved = top_items(cur, cfg, VERSION, store["users"]["u5"], 20, attributes=rare,
                            ef_search=20)
        assert len(starved) < 20, starved  # the index alone: short
        got = recall(cfg, "u5", 20, filters=rare, ef_search=20, cur=cur)
    assert_same(got["items"], want)


def test_exclude_interacted_leaves_out_the_users_items_of_the_window(store):
    cfg = store["cfg"]
    top = [i for i, _ in exact(store, "u1", 10)]
    since = retrieval.exclusion_start(cfg, BIZDATE)
    with store["admin"].cursor() as cur:
        for k, item in enumerate(top[:4]):  # any event counts, an impression too
            cur.execute(f"insert into {store['schema']}.sv_events values "
                        "('u1', %s, %s, %s)",
                        (item, "impression" if k % 2 else "click",
                         since + dt.timedelta(hours=k)))
        # before the window: older than every item recall can return, not read
        cur.execute(f"insert into {store['schema']}.sv_events values ('u1', %s, 'click', %s)",
                    (top[4], since - dt.timedelta(days=1)))
    gone = set(top[:4])
    with index_only(store) as cur:
        got = recall(cfg, "u1", 10, exclude_interacted=True, ef_search=1000, cur=cur)
    assert_same(got["items"], exact(store, "u1", 10, lambda k: store["ids"][k] not in gone))
    assert top[4] in [i["item_id"] for i in got["items"]]
    # with a filter too: still N, none of the user's items
    mid = recall(cfg, "u1", 30, url=store["url"], exclude_interacted=True,
                 filters={"category_level1": "mid"})
    assert len(mid["items"]) == 30 and not gone & {i["item_id"] for i in mid["items"]}
    assert recall(cfg, "u1", 10, url=store["url"], ef_search=1000)["items"][0][
        "item_id"] == top[0]


# --- bad requests --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, status, message", [
    ({"top_n": 0}, RecallError, 400, "top_n must be an integer from 1 to 500 "
                                     "(retrieval.max_top_n), got 0"),
    ({"top_n": 501}, RecallError, 400, "retrieval.max_top_n"),
    ({"top_n": 10, "ef_search": 5}, RecallError, 400, "ef_search must be an integer from 10"),
    ({"ef_search": 1001}, RecallError, 400, "to 1000 (retrieval.max_ef_search), got 1001"),
    ({"created_within_hours": -1}, RecallError, 400, "must be a number of hours above 0"),
    ({"created_within_hours": float("inf")}, RecallError, 400, "number of hours"),
    ({"filters": {"tags": "x"}}, RecallError, 400,
     "'tags' is not a filterable column: the filterable item columns are "
     "['category_level1', 'primary_type'] (retrieval.filter_columns)"),
    ({"filters": {"category_level1": "Mid"}}, UnknownFilterValue, 422,
     "no item of the active version 20261110 has category_level1 = 'Mid'"),
    ({"user_id": "nobody"}, RecallNotFound, 404,
     "user 'nobody' has no embedding in the active version 20261110"),
])
def test_each_bad_recall_gets_its_kind_and_message(store, kwargs, error, status, message):
    kwargs = {"user_id": "u1", **kwargs}
    with pytest.raises(error) as err:
        recall(store["cfg"], url=store["url"], **kwargs)
    assert err.value.status == status and message in str(err.value)


def test_no_active_version_is_not_found(store):
    other = store["cfg"].model_copy(update={"cold_start_recall": store[
        "cfg"].cold_start_recall.model_copy(update={"model_name": "never_published"})})
    with pytest.raises(RecallNotFound, match="has no active version yet"):
        recall(other, "u1", url=store["url"])


def test_filter_columns_are_checked_against_the_raw_items_table(store):
    from dropoutnet.steps.samples import check_raw_tables

    for columns, message in ((["nope"], "has no column(s) ['nope']"),
                             (["tags"], "column 'tags' of raw.items is text[]")):
        cfg = make_config(retrieval={"filter_columns": columns})
        with db.transaction(store["url"]) as cur, pytest.raises(MissingDataError) as err:
            check_raw_tables(cur, cfg)
        assert message in str(err.value) and "filter_columns" in str(err.value)


def test_embedding_tables_made_before_filters_get_the_attributes_column(database_url):
    """An existing deployment's item table (no `attributes`) is altered once by the next
    embedding task or stream worker start; its stored rows keep their vectors and get {}."""
    name = f"old_{uuid.uuid4().hex[:8]}"
    cfg = make_config(storage={"schema": name}, cold_start_recall={"model_name": f"m_{name}"})
    dim = cfg.vector_dim
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"""
                create schema {name};
                create table {name}.item_embeddings (model_version text not null,
                    item_id text not null, created_at timestamptz,
                    embedding vector({dim}) not null, primary key (model_version, item_id))
                    partition by list (model_version);
                create table {name}.item_embeddings_p20261110
                    partition of {name}.item_embeddings for values in ('20261110');
                insert into {name}.item_embeddings values
                    ('20261110', 'i1', now(), array_fill(1, array[{dim}])::vector);""")
        vectors.ensure_tables(database_url, cfg)
        vectors.ensure_tables(database_url, cfg)  # once is enough; again changes nothing
        with conn.cursor() as cur:
            cur.execute(f"select item_id, attributes, vector_dims(embedding) "
                        f"from {name}.item_embeddings")
            assert cur.fetchall() == [("i1", {}, dim)]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"drop schema if exists {name} cascade")
        conn.close()


# --- the CLI -------------------------------------------------------------------------------


def test_the_cli_takes_the_new_options(store, tmp_path, monkeypatch, capsys):
    path = write_config(tmp_path / "pipeline.yaml",
                        storage={"schema": store["cfg"].storage.schema_},
                        cold_start_recall={"train_days": 3,
                                           "model_name": store["cfg"].model_name})
    monkeypatch.setenv("DROPOUTNET_DATABASE_URL", store["url"])
    argv = ["--config", str(path), "recall", "--user-id", "u2", "--top-n", "5", "--json",
            "--filter", "category_level1=rare", "--filter", "primary_type=video",
            "--exclude-interacted", "--ef-search", "1000"]
    assert cli.main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    want = exact(store, "u2", 5, lambda k: store["attrs"][k] == {
        "category_level1": "rare", "primary_type": "video"})
    assert_same(got["items"], want)
    for bad, message in ((["--filter", "primary_type"], "--filter 'primary_type' must be "
                                                        "COLUMN=VALUE"),
                         (["--top-n", "0"], "--top-n must be an integer from 1 to 500"),
                         (["--ef-search", "2"], "--ef-search must be an integer from 10"),
                         (["--filter", "tags=x"], "--filter tags=VALUE: 'tags' is not a "
                                                  "filterable column")):
        assert cli.main(["--config", str(path), "recall", "--user-id", "u2", *bad]) == 1
        assert message in capsys.readouterr().err


# --- the HTTP API --------------------------------------------------------------------------


class Server(ThreadedServer):
    """``create_recall_app`` under a real uvicorn server in a thread, on a free port."""

    def __init__(self, cfg, url) -> None:
        from dropoutnet.recall.api import create_recall_app

        super().__init__(create_recall_app(cfg, url))

    def get(self, path: str, query=None, headers=None, method="GET"):
        """Status, JSON body and headers (lower-case names) of one request."""
        if query is not None:
            path += "?" + urllib.parse.urlencode(query)
        return self.exchange(method, path, headers=headers)


@pytest.fixture(scope="module")
def api(store):
    server = Server(store["cfg"], store["url"])
    yield server
    server.stop()


def test_the_api_answers_a_recall_with_its_version(store, api):
    status, body, headers = api.get("/v1/recall", [
        ("user_id", "u3"), ("n", "15"), ("filter.category_level1", "mid"),
        ("filter.primary_type", "live"), ("exclude_interacted", "true"), ("ef_search", "1000")])
    assert status == 200, body
    assert set(body) == {"user_id", "model_version", "arm", "items", "request_id"}
    assert body["arm"] == "active" and uuid.UUID(body["request_id"])
    assert body["user_id"] == "u3" and body["model_version"] == VERSION
    assert headers["x-model-version"] == VERSION
    assert_same(body["items"], exact(store, "u3", 15, lambda k: store["attrs"][k] == {
        "category_level1": "mid", "primary_type": "live"}))
    status, body, _ = api.get("/v1/recall", {"user_id": "u4", "created_within_hours": "2",
                                             "n": "5"})
    assert status == 200 and len(body["items"]) == 5
    # concurrent requests share the connection pool
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda u: api.get("/v1/recall", {
            "user_id": u, "n": "10", "ef_search": "1000"}), USERS * 4))
    for (status, body, _), user in zip(answers, USERS * 4):
        assert status == 200 and body["user_id"] == user
        assert_same(body["items"], exact(store, user, 10))
    status, body, _ = api.get("/healthz")
    assert (status, body["status"], body["model_version"]) == (200, "ok", VERSION)


@pytest.mark.parametrize("query, status, message", [
    ({"user_id": "u1", "n": "0"}, 400,
     "n must be an integer from 1 to 500 (retrieval.max_top_n), got 0"),
    ({"user_id": "u1", "n": "501"}, 400, "n must be an integer from 1 to 500"),
    ({"user_id": "u1", "n": "ten"}, 400, "n must be an integer from 1 to 500 "
                                         "(retrieval.max_top_n), got 'ten'"),
    ({"user_id": "u1", "n": "1.5"}, 400, "got '1.5'"),
    ({"user_id": "u1", "n": "20", "ef_search": "10"}, 400,
     "ef_search must be an integer from 20 (the number of items asked for"),
    ({"user_id": "u1", "ef_search": "5000"}, 400, "(retrieval.max_ef_search), got 5000"),
    ({"user_id": "u1", "ef_search": "x"}, 400, "got 'x'; or leave it out"),
    ({"user_id": "u1", "created_within_hours": "0"}, 400,
     "created_within_hours must be a number of hours above 0"),
    ({"user_id": "u1", "created_within_hours": "nan"}, 400, "created_within_hours must be"),
    ({"user_id": "u1", "created_within_hours": "soon"}, 400, "got 'soon'"),
    ({"user_id": "u1", "exclude_interacted": "maybe"}, 400,
     "exclude_interacted must be true or false, got 'maybe'"),
    ({"user_id": "u1", "top_n": "5"}, 400,
     "unknown query parameter 'top_n': the parameters are user_id, n, exclude_interacted, "
     "created_within_hours, ef_search, request_id and filter.<column>=<value>"),
    ([("user_id", "u1"), ("n", "5"), ("n", "6")], 400, "'n' is given more than once"),
    ({"user_id": "u1", "filter.": "x"}, 400, "names no column: write filter.<column>=<value>"),
    ({"user_id": "u1", "filter.tags": "x"}, 400,
     "filter.tags: 'tags' is not a filterable column: the filterable item columns are "
     "['category_level1', 'primary_type'] (retrieval.filter_columns)"),
    ({"n": "5"}, 400, "user_id is missing"),
    ({"user_id": "u1", "filter.category_level1": "jazz"}, 422,
     "filter.category_level1: no item of the active version 20261110 has "
     "category_level1 = 'jazz'"),
    ({"user_id": "nobody"}, 404, "user 'nobody' has no embedding in the active version"),
])
def test_each_bad_api_request_gets_its_status_and_message(api, query, status, message):
    got, body, _ = api.get("/v1/recall", query)
    assert got == status and message in body["error"], body
    assert set(body) == {"error"}


def test_api_paths_methods_token_and_an_unreachable_database(store, api, monkeypatch):
    status, body, _ = api.get("/v1/recal", {"user_id": "u1"})
    assert status == 404 and "no such endpoint" in body["error"]
    status, body, _ = api.get("/v1/recall", {"user_id": "u1"}, method="POST")
    assert status == 405 and "recall is a GET" in body["error"]
    # the model service's token rule
    monkeypatch.setenv("DROPOUTNET_SERVING_TOKEN", "s3cret")
    status, body, _ = api.get("/v1/recall", {"user_id": "u1"})
    assert status == 401 and "Authorization: Bearer <token>" in body["error"]
    assert api.get("/v1/recall", {"user_id": "u1"},
                   headers={"Authorization": "Bearer wrong"})[0] == 401
    assert api.get("/v1/recall", {"user_id": "u1"},
                   headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert api.get("/v1/recall", {"user_id": "u1", "n": "0"})[0] == 401  # token first
    assert api.get("/healthz")[0] == 200  # probes need no token
    monkeypatch.delenv("DROPOUTNET_SERVING_TOKEN")
    # no active version: 404; the database gone: 503, both with a message
    other = store["cfg"].model_copy(update={"cold_start_recall": store[
        "cfg"].cold_start_recall.model_copy(update={"model_name": "never_published"})})
    for cfg, url, code, message in (
            (other, store["url"], 404, "has no active version yet"),
            (store["cfg"], "postgresql://nobody@/nowhere?host=/nonexistent", 503,
             "the database is unavailable")):
        server = Server(cfg, url)
        try:
            status, body, _ = server.get("/v1/recall", {"user_id": "u1"})
            assert status == code and message in body["error"], body
            assert server.get("/healthz")[0] == 503
        finally:
            server.stop()


def test_recall_leaves_the_stored_vectors_as_they_were(store, api):
    """Bad requests and recalls read only: the version's rows are unchanged."""
    with db.transaction(store["url"]) as cur:
        cur.execute(f"select count(*), sum(length(attributes::text)) from "
                    f"{store['cfg'].storage.schema_}.item_embeddings")
        before = cur.fetchone()
    api.get("/v1/recall", {"user_id": "u1", "filter.category_level1": "x"})
    api.get("/v1/recall", {"user_id": "u1", "n": "3"})
    with db.transaction(store["url"]) as cur:
        cur.execute(f"select count(*), sum(length(attributes::text)) from "
                    f"{store['cfg'].storage.schema_}.item_embeddings")
        assert cur.fetchone() == before == (N_ITEMS, before[1])


def _other_model(store, **settings):
    """``store``'s config (same schema, model name and database) with other settings."""
    return make_config(storage={"schema": store["cfg"].storage.schema_,
                                **settings.pop("storage", {})},
                       cold_start_recall={"train_days": 3,
                                          "model_name": store["cfg"].model_name}, **settings)


def test_a_config_of_the_other_vector_type_is_named_not_a_500(store):
    """A recall API or CLI started with the other ``storage.vector_type`` than the tables
    hold (its queries would scan every item instead of using the index): the function raises
    the fix, the API answers 500 with it (the server's config, not the request, is wrong),
    its health check 503; the stored version is untouched."""
    cfg = _other_model(store, storage={"vector_type": "halfvec"})
    message = (f"hold vector({store['cfg'].vector_dim}) but this config's storage.vector_type "
               "is 'halfvec'")
    with pytest.raises(MissingDataError, match="set storage.vector_type: vector to keep") as err:
        recall(cfg, "u1", url=store["url"])
    assert message in str(err.value)
    server = Server(cfg, store["url"])
    try:
        for _ in range(2):  # checked again while it fails
            status, body, _ = server.get("/v1/recall", {"user_id": "u1"})
            assert status == 500 and message in body["error"], body
        status, body, _ = server.get("/healthz")
        assert status == 503 and message in body["status"]
    finally:
        server.stop()
    assert recall(store["cfg"], "u1", url=store["url"])["model_version"] == VERSION


def test_a_config_of_another_model_size_reads_the_vectors_as_stored(store):
    """Recall reads both sides' vectors from the tables: a model size changed in the config
    (which the next run's embedding tasks refuse) does not change its answer."""
    cfg = _other_model(store, model={"embedding_dim": 8})
    assert cfg.vector_dim != store["cfg"].vector_dim
    got = recall(cfg, "u2", 10, url=store["url"], ef_search=1000)
    assert_same(got["items"], exact(store, "u2", 10))


def test_attributes_round_trip_through_binary_copy(store):
    with db.transaction(store["url"]) as cur:
        cur.execute(f"select item_id, attributes from {store['cfg'].storage.schema_}"
                    ".item_embeddings where item_id in ('it0007', 'it0010') order by item_id")
        assert cur.fetchall() == [("it0007", {"category_level1": "rare",
                                              "primary_type": "live"}),
                                  ("it0010", {"category_level1": "mid",
                                              "primary_type": "live"})]
