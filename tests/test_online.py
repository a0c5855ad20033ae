"""The online loop: the served log, A/B experiments between versions, attribution and the
online metrics.

Runs on test_recall's store (random vectors written straight into the embedding tables: no
model needed) with a second published version as the challenger, under a real uvicorn
server over real HTTP; the crash test kills a real `dropoutnet recall-api` process.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import free_port, make_config, pipeline_env, publish_vectors, wait_for, write_config
from test_recall import USERS, VERSION, Server, store  # noqa: F401 - the shared fixture

from dropoutnet import registry
from dropoutnet.core import db
from dropoutnet.registry import ExperimentError, start_experiment, stop_experiment

CHALLENGER = "20261109"


@pytest.fixture(scope="module")
def online(store):  # noqa: F811 - pytest's fixture by name
    """``store`` with a second published version (the challenger: other random vectors of
    the same items and users) and the recall API over it."""
    rng = np.random.default_rng(12)
    rows = list(zip(store["ids"], store["created"], store["attrs"]))
    publish_vectors(store["url"], store["cfg"], CHALLENGER, dt.date(2026, 11, 9), rows,
                    rng.normal(size=store["vectors"].shape).astype(np.float32), USERS,
                    rng.normal(size=(len(USERS), store["cfg"].vector_dim)).astype(np.float32),
                    activate=False)
    server = Server(store["cfg"], store["url"])
    yield {**store, "api": server, "writer": server.app.state.served_log}
    server.stop()


def served_rows(env, request_ids) -> dict[str, tuple]:
    """The served log's rows of ``request_ids``: ``{request_id: (user, version, arm,
    experiment, channel, filters, item_ids, scores, source)}``."""
    with db.transaction(env["url"]) as cur:
        cur.execute(f"select request_id::text, user_id, model_version, arm, experiment_id, "
                    f"channel, filters, item_ids, scores, source "
                    f"from {env['cfg'].storage.schema_}.served_lists "
                    f"where request_id = any(%s::uuid[])", (list(request_ids),))
        return {r[0]: r[1:] for r in cur.fetchall()}


def test_the_served_log_holds_exactly_what_was_served(online):
    api, writer = online["api"], online["writer"]
    mine = str(uuid.uuid4())
    status, body, headers = api.get("/v1/recall", {"user_id": "u1", "n": "7",
                                                   "request_id": mine})
    assert status == 200 and body["request_id"] == mine == headers["x-request-id"]
    header_id = str(uuid.uuid4())
    status, body, headers = api.get("/v1/recall", {"user_id": "u2", "n": "3",
                                                   "created_within_hours": "2"},
                                    headers={"X-Request-Id": header_id})
    assert status == 200 and body["request_id"] == header_id
    # concurrent requests, each logged once with its own list, order and scores
    queries = [{"user_id": u, "n": str(n), "filter.category_level1": "mid"}
               for n in (1, 10, 25) for u in USERS]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: api.get("/v1/recall", q), queries))
    assert all(a[0] == 200 for a in answers)
    assert writer.flush(timeout=30)
    bodies = [a[1] for a in answers] + [
        api.get("/v1/recall", {"user_id": "u1", "n": "7", "request_id": mine})[1]]
    assert writer.flush(timeout=30)
    logged = served_rows(online, [b["request_id"] for b in bodies] + [header_id])
    for b, q in zip(bodies, queries + [{}]):
        user, version, arm, experiment, channel, filters, item_ids, scores, source = \
            logged[b["request_id"]]
        assert (user, version, arm, experiment, source) == (
            b["user_id"], b["model_version"], "active", None, "api")
        assert item_ids == [i["item_id"] for i in b["items"]]
        assert np.allclose(scores, [i["score"] for i in b["items"]], atol=1e-5)
        assert channel == "all" and filters == ({"category_level1": "mid"} if q else None)
    assert logged[header_id][4] == "newest" and len(logged[header_id][6]) == 3
    with db.transaction(online["url"]) as cur:  # the caller's id, sent twice: two rows
        cur.execute(f"select count(*) from {online['cfg'].storage.schema_}.served_lists "
                    f"where request_id = %s", (mine,))
        assert cur.fetchone()[0] == 2
    # a malformed request id is refused, naming it; nothing is logged for it
    status, body, _ = api.get("/v1/recall", {"user_id": "u1", "request_id": "42"})
    assert status == 400 and "request_id must be a UUID" in body["error"]
    assert api.get("/healthz")[1]["served_log"]["dropped"] == 0


def test_logging_can_be_turned_off(online, tmp_path):
    cfg = make_config(storage={"schema": online["cfg"].storage.schema_},
                      cold_start_recall={"train_days": 3, "model_name": online["cfg"].model_name},
                      retrieval={"log": {"enabled": False}})
    server = Server(cfg, online["url"])
    try:
        status, body, headers = server.get("/v1/recall", {"user_id": "u1"})
        assert status == 200 and "x-request-id" in headers
        assert server.app.state.served_log is None
        assert server.get("/healthz")[1]["served_log"] is None
    finally:
        server.stop()
    assert served_rows(online, [body["request_id"]]) == {}


def test_a_killed_api_loses_at_most_its_last_flush_interval(online, tmp_path):
    """A SIGKILLed `dropoutnet recall-api` (flush every 300 ms) kept every answer it gave
    more than the flush interval (plus a second for the COPY itself) before it died, each
    whole; what it lost was only its last moments.  A stopped one (SIGTERM, as `docker
    stop` sends) wrote everything, its last answers included."""
    cfg = online["cfg"]
    path = write_config(tmp_path / "pipeline.yaml", storage={"schema": cfg.storage.schema_},
                        cold_start_recall={"train_days": 3, "model_name": cfg.model_name},
                        retrieval={"log": {"flush_ms": 300, "flush_rows": 100000}})
    env = {**os.environ, "DROPOUTNET_DATABASE_URL": online["url"]}

    def serve_then(sig: int, seconds: float) -> tuple[list[tuple[float, dict]], float]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.cli", "--config", str(path),
                                 "recall-api", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _get(base, "/healthz") is not None, timeout=60, what="the API")
            answered: list[tuple[float, dict]] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                body = _get(base, "/v1/recall?" + urllib.parse.urlencode(
                    {"user_id": USERS[len(answered) % 5], "n": "5"}))
                answered.append((time.monotonic(), body))
            proc.send_signal(sig)
            stopped = time.monotonic()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        return answered, stopped

    answered, killed = serve_then(signal.SIGKILL, 3.0)
    logged = served_rows(online, [b["request_id"] for _, b in answered])
    old = [b for t, b in answered if t < killed - 0.3 - 1.0]
    assert len(answered) > 20 and len(old) > 10
    assert all(b["request_id"] in logged for b in old), "an answer older than the bound was lost"
    for _, b in answered:  # whatever was written is whole
        if b["request_id"] in logged:
            assert logged[b["request_id"]][6] == [i["item_id"] for i in b["items"]]
    answered, _ = serve_then(signal.SIGTERM, 1.0)
    assert len(served_rows(online, [b["request_id"] for _, b in answered])) == len(answered)


def _get(base: str, path: str) -> dict | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return json.loads(r.read())
    except OSError:
        return None


# --- experiments -----------------------------------------------------------------------------


def running(env) -> list:
    with db.transaction(env["url"]) as cur:
        return registry.list_experiments(cur, env["cfg"], running=True)


def test_bad_experiments_are_refused_and_change_nothing(online):
    cfg, url = online["cfg"], online["url"]
    for challenger, share, message in (
            ("20200101", 0.5, "was never published"),
            (VERSION, 0.5, "is the active version"),
            (CHALLENGER, 0.0, "strictly between 0 and 1"),
            (CHALLENGER, 1.0, "strictly between 0 and 1"),
            (CHALLENGER, float("nan"), "strictly between 0 and 1"),
            (CHALLENGER, "half", "strictly between 0 and 1")):
        with pytest.raises(ExperimentError, match=message):
            start_experiment(cfg, challenger, share, "tester", url=url)
        assert running(online) == []
    with pytest.raises(ExperimentError, match="no experiment .* is running"):
        stop_experiment(cfg, "tester", url=url)
    first = start_experiment(cfg, CHALLENGER, 0.3, "tester", "try it", url=url)
    try:
        with pytest.raises(ExperimentError, match=f"experiment {first.experiment_id} "
                                                  f"\\(challenger {CHALLENGER}\\) is still"):
            start_experiment(cfg, CHALLENGER, 0.5, "tester", url=url)
        assert [e.experiment_id for e in running(online)] == [first.experiment_id]
    finally:
        stop_experiment(cfg, "tester", url=url)


def test_the_split_is_stable_within_its_share_and_ends_with_the_experiment(online):
    cfg, url, api = online["cfg"], online["url"], online["api"]
    experiment = start_experiment(cfg, CHALLENGER, 0.2, "tester", url=url)
    try:
        users = [f"user{k}" for k in range(10_000)]
        arms = [experiment.arm_of(u) for u in users]
        assert abs(arms.count("challenger") / len(users) - 0.2) <= 0.02
        assert arms == [experiment.arm_of(u) for u in users]  # stable
        # the API serves each user the arm's version, and says so
        answers = {u: api.get("/v1/recall", {"user_id": u, "n": "5"})[1] for u in USERS}
        for u, body in answers.items():
            arm = experiment.arm_of(u)
            assert body["arm"] == arm and body["experiment_id"] == experiment.experiment_id
            assert body["model_version"] == (CHALLENGER if arm == "challenger" else VERSION)
        # a new API process (a restart) splits the same way
        again = Server(cfg, url)
        try:
            for u in USERS:
                assert again.get("/v1/recall", {"user_id": u, "n": "5"})[1]["arm"] == \
                    answers[u]["arm"]
        finally:
            again.stop()
        assert online["writer"].flush(timeout=30)
        logged = served_rows(online, [b["request_id"] for b in answers.values()])
        assert {logged[b["request_id"]][1:4] for b in answers.values()} == {
            (b["model_version"], b["arm"], experiment.experiment_id) for b in answers.values()}
    finally:
        stopped = stop_experiment(cfg, "tester", "done", url=url)
    assert stopped.stop_reason == "done" and not stopped.serving
    for u in USERS:  # everyone back on the active version
        body = api.get("/v1/recall", {"user_id": u, "n": "5"})[1]
        assert (body["arm"], body["model_version"]) == ("active", VERSION)
        assert "experiment_id" not in body


def test_making_the_challenger_active_ends_the_experiment(online):
    cfg, url = online["cfg"], online["url"]
    experiment = start_experiment(cfg, CHALLENGER, 0.5, "tester", url=url)
    change = registry.Change.cli(reason="promote")
    try:
        with db.transaction(url) as cur:
            registry.activate(cur, cfg, CHALLENGER, change, "rollback")
        with db.transaction(url) as cur:
            done = registry.list_experiments(cur, cfg, experiment_id=experiment.experiment_id)
        assert done[0].stopped_at is not None and done[0].stopped_by == "registry"
        assert "became the active version (rollback)" in done[0].stop_reason
        body = online["api"].get("/v1/recall", {"user_id": "u1", "n": "3"})[1]
        assert (body["arm"], body["model_version"]) == ("active", CHALLENGER)
    finally:
        with db.transaction(url) as cur:
            registry.activate(cur, cfg, VERSION, change, "rollback")


def test_retiring_the_challenger_ends_the_experiment(online):
    cfg, url = online["cfg"], online["url"]
    experiment = start_experiment(cfg, CHALLENGER, 0.9, "tester", url=url)
    try:
        with db.transaction(url) as cur:  # what retention does to a version it drops
            registry.tables.execute(cur, cfg, "retire_version", model_version=CHALLENGER)
        with db.transaction(url) as cur:
            [done] = registry.list_experiments(cur, cfg, experiment_id=experiment.experiment_id)
        assert done.stopped_at is not None and "retired" in done.stop_reason
        for u in USERS:
            body = online["api"].get("/v1/recall", {"user_id": u, "n": "3"})[1]
            assert (body["arm"], body["model_version"]) == ("active", VERSION)
    finally:
        with db.transaction(url) as cur:
            cur.execute(f"update {cfg.storage.schema_}.model_versions set retired_at = null "
                        "where model_version = %s", (CHALLENGER,))


# --- attribution and online metrics ----------------------------------------------------------

D = dt.date(2026, 11, 20)


def at(hhmm: str, day: dt.date = D) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def hand_built(online):
    """A day of served lists and events worked out by hand (users ua, ub, uc; items x, y,
    z, w, q, v; attribution 2 h; positives: click).  The config maps the events' request id
    column; ``plain`` is the same config without it (time-window attribution only)."""
    from dropoutnet.online.served_log import ServedList, ServedLogWriter

    cfg = online["cfg"]
    raw = online["schema"]
    base = dict(storage={"schema": cfg.storage.schema_},
                cold_start_recall={"train_days": 3, "model_name": cfg.model_name},
                online={"positive_events": ["click"], "attribution_hours": 2,
                        "bootstrap_samples": 200})
    exact_cfg = make_config(**base)
    assert exact_cfg.raw.events.columns["request_id"] == "request_id"
    events = exact_cfg.raw.events
    plain_raw = exact_cfg.raw.model_copy(update={"events": events.model_copy(update={
        "columns": {k: v for k, v in events.columns.items() if k != "request_id"}})})
    r3, r_other = uuid.uuid4(), uuid.uuid4()

    def served(user, when, items, request_id=None, version=VERSION, arm="active",
               experiment=None, channel="all"):
        return ServedList(request_id or uuid.uuid4(), when, "api", user, version, arm,
                          experiment, channel, None, items, [1.0 / k for k in
                                                             range(1, len(items) + 1)])

    writer = ServedLogWriter(cfg, online["url"]).start()
    for row in (served("ua", at("23:59", D - dt.timedelta(days=1)), ["v"]),  # the day before
                served("ua", at("10:00"), ["x", "y", "z"]),                 # L1
                served("ua", at("11:00"), ["y", "w"]),                      # L2
                served("ub", at("11:00"), ["w", "x"], request_id=r3),       # L3
                served("uc", at("12:00"), ["q"], version=CHALLENGER, arm="challenger",
                       experiment=7, channel="newest")):                    # L4
        writer.log(row)
    assert writer.close()
    events = [
        ("ua", "v", "click", at("00:30"), None),   # credited to no list of D
        ("ua", "x", "click", at("09:00"), None),   # before any serving
        ("ua", "y", "impression", at("11:20"), None),  # not a positive event
        ("ua", "y", "click", at("11:30"), None),   # served twice: credited once, to L2
        ("ua", "y", "click", at("11:30"), None),   # the same event again: counted once
        ("ua", "z", "click", at("12:30"), None),   # after L1's window: not credited
        ("ub", "w", "click", at("11:10"), None),   # L3 position 1, by the window
        ("ua", "w", "click", at("11:05"), str(r_other)),  # names another response: none
        ("ub", "x", "click", at("15:00"), str(r3).upper()),  # L3 by its request id, late
        ("ud", "x", "click", at("10:30"), None),   # another user
    ]
    admin = online["admin"]
    with admin.cursor() as cur:
        cur.executemany(f"insert into {raw}.sv_events values (%s, %s, %s, %s, %s)", events)
        cur.executemany(f"insert into {raw}.sv_items (item_id, author_id, create_time) "
                        f"values (%s, 'a1', %s)", [("x", at("08:00")), ("w", at("10:30"))])
    yield {"exact": exact_cfg, "plain": exact_cfg.model_copy(update={"raw": plain_raw}),
           "url": online["url"]}


def test_online_metrics_equal_a_hand_computation(hand_built):
    from dropoutnet.online import metrics

    groups = metrics.compute(hand_built["exact"], metrics.Period.of_bizdate(D),
                             hand_built["url"])
    assert [(g["model_version"], g["arm"], g["experiment_id"], g["channel"]) for g in groups] \
        == [(CHALLENGER, "challenger", 7, "newest"), (VERSION, "active", None, "all")]
    challenger, active = groups[0]["metrics"], groups[1]["metrics"]
    assert (active["requests"], active["users"], active["items_served"]) == (3, 2, 7)
    assert active["clicked"] == 3 and active["ctr"]["value"] == pytest.approx(3 / 7)
    low, high = active["ctr"]["ci"]
    assert low <= 3 / 7 <= high
    assert [(p["position"], p["served"], p["clicked"]) for p in active["ctr_by_position"]] == [
        (1, 3, 2), (2, 3, 1), (3, 1, 0)]
    recall = active["served_recall"]
    assert (recall["positives"], recall["credited"]) == (4, 3)
    assert recall["value"] == pytest.approx(3 / 4)
    reach = active["new_item_reach"]
    assert (reach["new_items"], reach["served"], reach["share"]) == (2, 2, 1.0)
    assert (reach["minutes_to_served"]["p50"], reach["minutes_to_served"]["p90"]) == (
        pytest.approx(75), pytest.approx(111))
    assert (reach["minutes_to_click"]["p50"], reach["minutes_to_click"]["p90"]) == (
        pytest.approx(230), pytest.approx(382))
    assert (challenger["requests"], challenger["items_served"], challenger["clicked"]) == (1, 1, 0)
    assert challenger["new_item_reach"]["share"] == 0.0
    # without the request id role: ub's late click on x is outside L3's window, and ua's
    # click on w (naming another response) is credited to L2 by the window
    plain = metrics.compute(hand_built["plain"], metrics.Period.of_bizdate(D),
                            hand_built["url"])[1]["metrics"]
    assert [(p["position"], p["clicked"]) for p in plain["ctr_by_position"]] == [
        (1, 2), (2, 1), (3, 0)]
    assert (plain["served_recall"]["positives"], plain["served_recall"]["credited"]) == (4, 3)


def test_the_online_metrics_task_replaces_its_bizdate(hand_built):
    from dropoutnet.online import metrics
    from dropoutnet.steps.online_metrics import online_metrics

    cfg, url = hand_built["exact"], hand_built["url"]
    for _ in range(2):  # a rerun replaces the day's rows
        stored = online_metrics(cfg, D, url)
    with db.transaction(url) as cur:
        rows = metrics.read(cur, cfg, D, D)
    assert len(rows) == len(stored["groups"]) == 2
    assert {r["experiment_id"] for r in rows} == {None, 7}
    skipped = online_metrics(hand_built["plain"].model_copy(update={
        "online": hand_built["plain"].online.model_copy(update={"positive_events": []})}),
        D, url)
    assert "online.positive_events is not set" in skipped["skipped"]
    with db.transaction(url) as cur:
        assert len(metrics.read(cur, cfg, D, D)) == 2  # nothing was touched


def test_the_cli_runs_an_experiment_and_shows_the_online_figures(hand_built, online, tmp_path,
                                                                 monkeypatch, capsys):
    import json

    from dropoutnet import cli

    cfg = online["cfg"]
    path = write_config(tmp_path / "pipeline.yaml", storage={"schema": cfg.storage.schema_},
                        cold_start_recall={"train_days": 3, "model_name": cfg.model_name},
                        online={"positive_events": ["click"], "attribution_hours": 2,
                                "bootstrap_samples": 200})
    monkeypatch.setenv("DROPOUTNET_DATABASE_URL", online["url"])

    def run(*argv) -> tuple[int, str, str]:
        code = cli.main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("run", "--bizdate", D.isoformat(), "--tasks", "online_metrics")
    assert code == 0, err
    code, out, _ = run("metrics", "--bizdate", D.isoformat(), "--online")
    assert code == 0 and f"{D}  {VERSION}  active" in out, out
    code, out, _ = run("metrics", "--bizdate", D.isoformat(), "--online", "--json")
    rows = json.loads(out)["rows"]
    assert {(r["model_version"], r["arm"]) for r in rows} == {
        (VERSION, "active"), (CHALLENGER, "challenger")}
    # bad input: one line naming the problem, exit 1, nothing started
    for argv, message in ((("start",), "needs --challenger"),
                          (("start", "--challenger", CHALLENGER, "--share", "2"),
                           "strictly between 0 and 1"),
                          (("stop",), "nothing to stop"),
                          (("status", "--id", "999999"), "experiment 999999")):
        code, _, err = run("experiment", *argv)
        assert code == 1 and message in err, err
    assert running(online) == []
    code, out, _ = run("experiment", "start", "--challenger", CHALLENGER, "--share", "0.4",
                       "--reason", "cli test")
    assert code == 0 and "serves 40% of users" in out
    code, _, _ = run("recall", "--user-id", "u1", "--top-n", "3")
    code, out, _ = run("experiment", "status")
    assert code == 0 and "challenger 20261109 to 40% of users" in out and "running" in out
    code, out, _ = run("experiment", "stop", "--reason", "enough")
    assert code == 0 and "every user is on the active version" in out
    code, out, _ = run("experiment", "status", "--json")
    status = json.loads(out)
    assert status["experiment"]["stop_reason"] == "enough"
    served = [arm for c in status["channels"].values() for arm in c if arm != "difference"]
    assert len(served) == 1  # the CLI's one recall, logged in its user's arm


def test_any_recall_parameter_gets_an_answer_or_an_error_naming_it(online):
    """Property-based: any value of any parameter (and unknown or repeated ones) gets a 2xx,
    or a 4xx whose error says what is wrong; never a 5xx.  Each parameter mixes values a
    caller means (so the rest of the request gets that far) with anything at all."""
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    api = online["api"]
    junk = st.one_of(st.text(max_size=12), st.sampled_from(
        ["", "0", "-1", "1e309", "nan", "inf", "\x00", "u1\x00", "mid\x00", "9" * 40,
         "%00", "' or 1=1 --", "\u2028", "true\x00"]))

    def param(*meant: str):
        return st.one_of(st.sampled_from(meant), junk)

    query = st.fixed_dictionaries({"user_id": param("u1", "u3", "nobody")}, optional={
        "n": param("1", "5", "500", "501"),
        "exclude_interacted": param("true", "false", "yes"),
        "created_within_hours": param("2", "0.5", "876000"),
        "ef_search": param("100", "1000", "1001"),
        "request_id": param(str(uuid.uuid4())),
        "filter.category_level1": param("mid", "rare", "nope"),
        "filter.primary_type": param("live", "video"),
        "filter.unknown": param("x"),
    })

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(query=query, extra=st.lists(st.tuples(st.sampled_from(["user_id", "n", "other"]),
                                                 junk), max_size=1))
    @example(query={"user_id": "u1", "filter.category_level1": "mid\x00"}, extra=[])
    def check(query, extra):
        pairs = list(query.items()) + extra
        status, body, _ = api.get("/v1/recall", pairs)
        assert status < 500, (pairs, body)
        if status >= 400:
            assert body["error"], body
        else:
            assert uuid.UUID(body["request_id"]) and body["items"] is not None

    check()


# --- the closed loop -------------------------------------------------------------------------


def test_the_loop_tells_the_planted_ranking_from_random_lists(database_url, tmp_path_factory):
    """Simulated users of the synthetic data ask the real recall API (over HTTP) during an
    experiment between a version serving the planted oracle's ranking (the challenger) and
    one serving random vectors (the active version); the online figures must find the
    oracle arm better, significantly: a check that the loop measures what it claims."""
    from dropoutnet import pipeline
    from dropoutnet.online.report import experiment_status
    from dropoutnet.online.simulate import simulate

    end = dt.date(2026, 11, 20)
    with pipeline_env(database_url, tmp_path_factory.mktemp("loop"), "loop", end,
                      dict(n_users=300, n_items=200, n_authors=20, days=2,
                           new_items_per_day=50, seed=4),
                      online={"bootstrap_samples": 300}) as e:
        cfg, url = pipeline.load(e["config"]), e["url"]
        dim = cfg.vector_dim
        with db.transaction(url) as cur:
            cur.execute("select o.user_id, o.taste::real[] from sv_oracle_users as o")
            tastes = dict(cur.fetchall())
            cur.execute("select i.item_id, i.create_time, o.latent::real[], o.quality "
                        "from sv_items as i join sv_oracle_items as o using (item_id)")
            items = cur.fetchall()
        users = sorted(tastes)

        def pad(rows):
            out = np.zeros((len(rows), dim), dtype=np.float32)
            for k, row in enumerate(rows):
                out[k, :len(row)] = row
            return out

        rows = [(i, created, {}) for i, created, _, _ in items]
        oracle_items = pad([list(latent) + [quality] for _, _, latent, quality in items])
        oracle_users = pad([list(tastes[u]) + [1.0] for u in users])
        rng = np.random.default_rng(0)
        publish_vectors(url, cfg, "20261119", end - dt.timedelta(days=1), rows,
                        rng.normal(size=oracle_items.shape).astype(np.float32), users,
                        rng.normal(size=oracle_users.shape).astype(np.float32))
        publish_vectors(url, cfg, "20261120", end, rows, oracle_items, users, oracle_users,
                        activate=False)
        experiment = start_experiment(cfg, "20261120", 0.5, "tester", url=url)
        server = Server(cfg, url)
        try:
            done = simulate(cfg, users=300, requests_per_user=2, top_n=10,
                            api_url=server.url, url=url, seed=1)
            assert server.app.state.served_log.flush(timeout=30)
        finally:
            server.stop()
        assert done["answered"] == 600 and set(done["arms"]) == {"control", "challenger"}
        status = experiment_status(cfg, experiment.experiment_id, url=url)
        verdict = status["channels"]["all"]["difference"]
        assert verdict["ctr"]["significant"] and verdict["ctr"]["difference"] > 0, verdict
        arms = status["channels"]["all"]
        assert arms["challenger"]["requests"] + arms["control"]["requests"] == 600
        # the simulated events are the raw tables' now: the next bizdate's samples see them
        with db.transaction(url) as cur:
            cur.execute("select count(*) from sv_events where request_id is not null")
            assert cur.fetchone()[0] == done["events"]
