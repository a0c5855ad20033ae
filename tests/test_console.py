"""The DropoutNet console (``plugins/dropoutnet_console.py``) in a real Airflow API server.

One module-wide setup: tiny generated data, the pipeline run for two bizdates (two real
versions), and ``airflow api-server`` started with the stack's environment (SQLite metadata,
the simple auth manager with an admin and a viewer), reaching the pipeline's database
through the Airflow connection ``dropoutnet_db`` as the tasks do.  Every request goes over
HTTP with Airflow's own JWTs; what the console answers is compared with the registry, the
metrics table and the CLI.  The browser's view of the same server is ``test_console_browser``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from helpers import free_port, pipeline_env, small_features

from dropoutnet import pipeline, registry
from dropoutnet.core import db
from dropoutnet.local import stack

END = dt.date(2026, 11, 20)
DAY1, DAY2 = END - dt.timedelta(days=1), END
V1, V2 = "20261119", "20261120"
PASSWORDS = {"admin": "admin-pw", "viewer": "viewer-pw"}


def _wait(url: str, proc: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited ({proc.returncode}):\n"
                               + log.read_text()[-3000:])
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"the API server did not answer in {seconds}s:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def console(database_url, tmp_path_factory):
    """Two published versions and an Airflow API server with the console: a dict with the
    server's ``url``, the pipeline ``env`` and ``cfg``, the users' ``tokens``."""
    home = tmp_path_factory.mktemp("console")
    with pipeline_env(database_url, home, "con", END,
                      dict(n_users=200, n_items=100, n_authors=15, days=6,
                           new_items_per_day=20, seed=5),
                      features=small_features(), cold_start_recall={"train_days": 3},
                      training={"epochs": 2, "batch_size": 256},
                      retrieval={"candidate_window_days": 4,
                                 "api": {"port": free_port()}},
                      stream={"service_url": f"http://127.0.0.1:{free_port()}"},
                      evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                  "gate": {"metric": "recall@10", "tolerance": 1.0}}) as env:
        pipeline.run(DAY1.isoformat())
        pipeline.run(DAY2.isoformat())
        cfg = pipeline.load(env["config"])

        port = free_port()
        base = home / "stack"
        os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin,viewer:viewer"
        try:
            airflow_env = stack.airflow_env(base=base, port=port,
                                            sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}")
        finally:
            del os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
        airflow_env["AIRFLOW_CONN_DROPOUTNET_DB"] = env["url"]
        airflow_env.pop("DROPOUTNET_DATABASE_URL")  # the console reads the connection
        (stack.airflow_home(base) / stack.PASSWORDS_FILE).write_text(json.dumps(PASSWORDS))
        stack.run_airflow(["db", "migrate"], airflow_env, timeout=600)
        log = home / "api-server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([stack.airflow_bin(), "api-server"], env=airflow_env,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=str(stack.REPO),
                                    start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url + "/api/v2/monitor/health", proc, log)
            tokens = {}
            for user, password in PASSWORDS.items():
                answer = requests.post(f"{url}/auth/token",
                                       json={"username": user, "password": password},
                                       timeout=30)
                assert answer.status_code == 201, answer.text
                tokens[user] = answer.json()["access_token"]
            yield {"url": url, "env": env, "cfg": cfg, "tokens": tokens, "airflow_env": airflow_env,
                   "log": log, "home": home}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def get(console, path: str, user: str | None = "admin", **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {console['tokens'][user]}"} if user else {}
    return requests.get(f"{console['url']}/dropoutnet{path}", params=params, headers=headers,
                        timeout=60)


def post(console, path: str, user: str | None = "admin", body=None, **kwargs):
    headers = {"Authorization": f"Bearer {console['tokens'][user]}"} if user else {}
    return requests.post(f"{console['url']}/dropoutnet{path}", json=body, headers=headers,
                         timeout=120, **kwargs)


def read(console, fn):
    with db.transaction(console["env"]["url"]) as cur:
        return fn(cur, console["cfg"])


def test_the_views_show_what_the_registry_and_the_metrics_hold(console):
    overview = get(console, "/api/overview")
    assert overview.status_code == 200, overview.text
    active = read(console, registry.active)
    assert overview.json()["active"]["model_version"] == active.model_version == V2
    assert overview.json()["last_change"]["to_version"] == V2

    versions = get(console, "/api/versions").json()
    stored = read(console, registry.versions)
    runs = {r["run_id"]: r for r in read(console, registry.runs)}
    assert [v["model_version"] for v in versions] == [v["model_version"] for v in stored]
    assert [v["state"] for v in versions] == ["active", "superseded"]
    for shown, row in zip(versions, stored):
        run = runs[row["run_id"]]
        assert shown["run_id"] == row["run_id"] and shown["pipeline_run"] == run["pipeline_run"]
        assert shown["config_hash"] == run["config_hash"]
        assert shown["gate"]["decision"] == run["decision"] == "published"
        assert shown["gate"]["new"] == run["gate"]["new"]
        assert shown["gate"]["active"] == run["gate"]["active"]
    assert versions[0]["warm_start_from"] == str(DAY1)
    assert versions[0]["gate"]["active_version"] == V1  # V2's gate scored V1 on its users

    detail = get(console, f"/api/versions/{V2}").json()
    metrics = registry.read_metrics(console["cfg"], DAY2, console["env"]["url"])
    cold = metrics["splits"]["cold_items"]
    assert detail["metrics"]["cold_items"]["recall@10"] == cold["recall@10"]
    assert detail["samples"]["train"] == metrics["train_samples"]
    assert len(detail["loss_per_epoch"]) == 2  # training.epochs

    quality = get(console, "/api/quality", split="cold_items", k="10").json()
    assert [p["bizdate"] for p in quality["points"]] == [str(DAY1), str(DAY2)]
    assert quality["points"][1]["value"] == metrics["splits"]["cold_items"]["recall@10"]
    assert quality["points"][1]["ci"] == metrics["splits"]["cold_items"]["recall@10_ci"]
    gate = metrics["gate"]
    assert quality["points"][1]["threshold"] == pytest.approx(gate["active"] * (1 - 1.0))
    assert quality["points"][1]["live"] == V2

    history = get(console, "/api/history").json()
    stored = read(console, registry.activations)
    assert [(h["action"], h["to_version"]) for h in history] == [
        (h["action"], h["to_version"]) for h in stored] == [("publish", V2), ("publish", V1)]

    pages = {path: get(console, path) for path in ("/", "/versions", f"/versions/{V2}",
                                                   "/history", "/quality", "/compare",
                                                   "/health", "/playground")}
    for path, page in pages.items():
        assert page.status_code == 200 and "<html" in page.text, (path, page.text[:500])
    assert f">{V2}</a>" in pages["/"].text
    assert "<svg" in pages["/quality"].text and "<circle" in pages["/quality"].text


def _routes():
    """Every route of the console app, as (method, path with sample parameters)."""
    from dropoutnet.console.app import create_app

    app = create_app(None, None, lambda: None)
    samples = {"{version}": V1, "{run_id:path}": "manual__x", "{name}": "console.css",
               "{experiment_id}": "1"}
    out = []
    for route in app.routes:
        if not hasattr(route, "methods") or route.path.startswith(("/openapi", "/docs")):
            continue
        path = route.path
        for key, value in samples.items():
            path = path.replace(key, value)
        assert "{" not in path, f"add a sample for {route.path}"
        out.extend((method, path) for method in route.methods if method != "HEAD")
    return out


def test_every_route_refuses_anonymous_and_forged_requests(console):
    routes = _routes()
    assert ("POST", f"/api/versions/{V1}/make-live") in routes and len(routes) >= 18
    before = read(console, registry.activations)
    for method, path in routes:
        url = f"{console['url']}/dropoutnet{path}"
        anonymous = requests.request(method, url, json={"reason": "x"}, timeout=30)
        assert anonymous.status_code in (401, 403), (method, path, anonymous.status_code)
        forged = requests.request(method, url, json={"reason": "x"}, timeout=30,
                                  headers={"Authorization": "Bearer not-a-token"})
        assert forged.status_code in (401, 403), (method, path, forged.status_code)
        assert "Traceback" not in anonymous.text
    page = requests.get(f"{console['url']}/dropoutnet/versions", timeout=30)
    assert "Sign in to Airflow" in page.text and "/auth/login" in page.text
    assert read(console, registry.activations) == before


def test_make_live_is_for_editors_audited_and_changes_nothing_when_it_fails(console):
    cfg, url = console["cfg"], console["env"]["url"]
    history = read(console, registry.activations)
    # a viewer sees everything but cannot make a version live
    assert get(console, "/api/versions", user="viewer").status_code == 200
    refused = post(console, f"/api/versions/{V1}/make-live", user="viewer",
                   body={"reason": "try"})
    assert refused.status_code == 403 and "edit permission" in refused.json()["error"]
    # a browser session without the page's token (a cross-site form) is refused
    session = requests.Session()
    session.cookies.set("_token", console["tokens"]["admin"])
    forged = session.post(f"{console['url']}/dropoutnet/api/versions/{V1}/make-live",
                          json={"reason": "csrf"}, timeout=30)
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["error"]
    cross = session.post(f"{console['url']}/dropoutnet/api/versions/{V1}/make-live",
                         json={"reason": "csrf"}, timeout=30,
                         headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    # malformed and impossible requests: a clear 4xx, nothing changed
    for path, body, status, words in [
            (f"/api/versions/{V1}/make-live", {}, 400, "reason is required"),
            (f"/api/versions/{V1}/make-live", {"reason": "x" * 501}, 400, "at most 500"),
            ("/api/versions/2026-11-19/make-live", {"reason": "x"}, 400, "yyyymmdd"),
            ("/api/versions/20250101/make-live", {"reason": "x"}, 409, "never published"),
            (f"/api/versions/{V1}/make-live", ["x"], 400, "JSON object")]:
        answer = post(console, path, body=body)
        assert answer.status_code == status and words in answer.json()["error"], answer.text
    assert read(console, registry.activations) == history
    assert read(console, registry.active).model_version == V2

    # an editor makes V1 live: one history row, and the CLI agrees
    done = post(console, f"/api/versions/{V1}/make-live", body={"reason": "V2 looks off"})
    assert done.status_code == 200, done.text
    assert done.json()["model_version"] == V1 and done.json()["previous_version"] == V2
    after = read(console, registry.activations)
    assert len(after) == len(history) + 1
    row = after[0]
    assert (row["action"], row["from_version"], row["to_version"], row["actor"], row["source"],
            row["reason"]) == ("rollback", V2, V1, "admin", "airflow ui", "V2 looks off")
    out = subprocess.run([sys.executable, "-m", "dropoutnet.cli", "versions"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert f"* {V1}" in out and f"  {V2}" in out
    assert get(console, "/api/overview").json()["active"]["model_version"] == V1
    # and back, for the tests after this one
    assert post(console, f"/api/versions/{V2}/make-live",
                body={"reason": "back"}).status_code == 200
    assert read(console, registry.active).model_version == V2
    del cfg, url


def _cli_recall(*args):
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.cli", "recall", "--json", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert uuid.UUID(answer.pop("request_id"))  # the CLI's recall is logged; the playground's not
    return answer


def test_the_playground_answers_what_recall_answers(console):
    s = console["env"]["schema"]
    with console["env"]["conn"].cursor() as cur:
        cur.execute(f"select user_id from {s}.user_embeddings where model_version = '{V2}' "
                    "order by user_id limit 1")
        (user,), = cur.fetchall()
    answer = get(console, "/api/playground", user_id=user, n="7", other=V1)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["recall"] == _cli_recall("--user-id", user, "--top-n", "7")
    assert data["other"]["model_version"] == V1 and len(data["other"]["items"]) == 7
    assert data["history"] and all(i["item_id"] in data["content"] for i in data["recall"]["items"])
    music = get(console, "/api/playground", user_id=user, n="5",
                **{"filter.category_level1": "music"}).json()
    assert music["recall"] == _cli_recall("--user-id", user, "--top-n", "5",
                                          "--filter", "category_level1=music")
    for params, status, words in [({"user_id": "nobody"}, 404, "no embedding"),
                                  ({"user_id": user, "n": "many"}, 400, "n must be"),
                                  ({"user_id": user, "color": "red"}, 400, "unknown query"),
                                  ({"user_id": user, "other": "2026"}, 400, "yyyymmdd"),
                                  ({"user_id": user, "other": "20200101"}, 404, "never")]:
        bad = get(console, "/api/playground", **params)
        assert bad.status_code == status and words in bad.json()["error"], bad.text
        page = get(console, "/playground", **params)
        assert page.status_code == status and words in page.text and "Traceback" not in page.text


def test_compare_two_versions(console):
    data = get(console, "/api/compare", a=V1, b=V2, users="20", n="5").json()
    m1 = registry.read_metrics(console["cfg"], DAY1, console["env"]["url"])
    row = next(r for r in data["metrics"]
               if r["split"] == "cold_items" and r["metric"] == "recall@10")
    assert row["a"] == m1["splits"]["cold_items"]["recall@10"]
    assert row["difference"]["value"] == pytest.approx(row["b"] - row["a"])
    gate = registry.read_metrics(console["cfg"], DAY2, console["env"]["url"])["gate"]
    assert data["paired"]["value"] == pytest.approx(gate["difference"])
    assert data["config"] == []  # both runs trained with the same config
    assert data["overlap"]["users"] == 20 and 0 <= data["overlap"]["mean_overlap"] <= 1
    assert get(console, "/api/compare").json()["a"]["model_version"] == V1  # the default pair
    bad = get(console, "/api/compare", a=V1, b="20200101")
    assert bad.status_code == 404 and "never published" in bad.json()["error"]


def test_health_says_what_is_down_and_what_to_do(console):
    checks = {c["name"]: c for c in get(console, "/api/health").json()}
    assert set(checks) == {"model service", "stream worker", "recall API"}
    for check in checks.values():  # nothing of the real-time path runs in this test
        assert check["status"] == "down" and check["fix"], check
    assert "dropoutnet stream" in checks["stream worker"]["fix"]


def test_bad_parameters_get_a_clear_4xx(console):
    for path, params, words in [
            ("/api/versions/2026-11-20", {}, "yyyymmdd"),
            ("/api/versions/20200101", {}, "never published"),
            ("/api/quality", {"split": "hot"}, "split must be one of"),
            ("/api/quality", {"k": "7"}, "evaluation.k"),
            ("/api/quality", {"from": "2026-13-01"}, "from"),
            ("/api/quality", {"from": "2026-11-20", "to": "2026-11-01"}, "after"),
            ("/api/compare", {"a": V1, "b": V2, "users": "0"}, "users must be"),
            ("/api/nothing", {}, "no such page")]:
        answer = get(console, path, **params)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
        assert words in answer.json()["error"], (path, answer.text)


FUZZ_ROUTES = {  # each JSON endpoint and its parameters
    "/api/overview": (), "/api/versions": (), "/api/history": (),
    "/api/quality": ("split", "k", "from", "to"),
    "/api/compare": ("a", "b", "users", "n"),
    "/api/playground": ("user_id", "n", "created_within_hours", "exclude_interacted",
                        "ef_search", "other", "filter.category_level1", "filter.color"),
    "/api/health": (),
    "/api/online": ("from", "to"),
    "/api/experiments/1": (),
}


def test_no_parameter_makes_the_console_fail(console):
    """Property-based: whatever the parameters, a JSON endpoint answers 2xx or a 4xx with an
    error message, never a 5xx; a make-live with anything but a published version and a
    reason changes nothing."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.one_of(st.text(max_size=12), st.sampled_from(
        ["", "0", "-1", "10", "1e309", "nan", "true", "20261120", "2026-11-20", V1, V2,
         "cold_items", "9" * 30, "%00", "../../etc", "u000001"]))
    version_path = st.one_of(st.text(min_size=1, max_size=12).filter(lambda v: v not in (V1, V2)),
                             st.sampled_from(["20200101", "0", "2026-11-19"]))
    before = read(console, registry.activations)

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(sorted(FUZZ_ROUTES)), data=st.data())
    def check(route, data):
        names = FUZZ_ROUTES[route]
        chosen = data.draw(st.lists(st.sampled_from(names), unique=True) if names else
                           st.just([]))
        answer = get(console, route, **{n: data.draw(values) for n in chosen})
        assert answer.status_code < 500, (route, answer.url, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["error"], answer.text
        body = data.draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["reason", "x"]),
                                                              values), st.lists(values)))
        version = data.draw(version_path)
        made = post(console, f"/api/versions/{quote(version, safe='')}/make-live", body=body)
        assert 400 <= made.status_code < 500, (version, body, made.text)

    check()
    assert read(console, registry.activations) == before


def test_experiments_start_and_stop_from_the_console_for_editors_only(console):
    """The online page lists what each version did once served and the experiments; an
    editor starts and stops one (a viewer may not), and every refusal changes nothing."""

    def running():
        return read(console, lambda cur, c: registry.list_experiments(cur, c, running=True))

    page = get(console, "/online", user="viewer")
    assert page.status_code == 200 and "A/B experiments" in page.text
    online = get(console, "/api/online", user="viewer").json()
    assert online["active"] == V2 and online["challengers"] == [V1]
    refused = post(console, "/api/experiments", user="viewer",
                   body={"challenger": V1, "share": 0.3, "reason": "try"})
    assert refused.status_code == 403 and "edit permission" in refused.json()["error"]
    for body, status, words in [
            ({"challenger": V1, "share": 0.3}, 400, "reason is required"),
            ({"challenger": V1, "share": 1.5, "reason": "x"}, 400, "strictly between 0 and 1"),
            ({"challenger": 20261119, "reason": "x"}, 400, "yyyymmdd"),
            ({"challenger": "20250101", "reason": "x"}, 404, "never published"),
            ({"challenger": V2, "reason": "x"}, 409, "is the active version"),
            (["x"], 400, "JSON object")]:
        answer = post(console, "/api/experiments", body=body)
        assert answer.status_code == status and words in answer.json()["error"], answer.text
    assert running() == [] and post(console, "/api/experiments/stop",
                                    body={"reason": "x"}).status_code == 409
    started = post(console, "/api/experiments", body={"challenger": V1, "share": 0.3,
                                                      "reason": "from the console"})
    assert started.status_code == 200, started.text
    number = started.json()["experiment_id"]
    try:
        assert post(console, "/api/experiments", body={"challenger": V1, "reason": "again"}
                    ).status_code == 409
        [e] = running()
        assert (e.challenger, e.share, e.started_by) == (V1, 0.3, "admin")
        status = get(console, f"/api/experiments/{number}", user="viewer").json()
        assert status["experiment"]["experiment_id"] == number
        assert "running" in get(console, f"/experiments/{number}").text
    finally:
        stopped = post(console, "/api/experiments/stop", body={"reason": "seen enough"})
    assert stopped.status_code == 200 and stopped.json()["stop_reason"] == "seen enough"
    assert running() == [] and get(console, "/api/experiments/999999").status_code == 404
    assert read(console, registry.active_version) == V2  # never touched by the experiment


def _serve_in_thread(app):
    """``app`` served by uvicorn on a free port in this process; the server's base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("database", ["empty", "unreachable"])
def test_before_the_first_run_and_without_a_database_the_pages_say_so(database, db_schema,
                                                                     tmp_path, monkeypatch):
    """The console's own app (the plugin's authentication is the only part left out: the
    server above tests it) on an empty schema, and on a database that does not answer."""
    from helpers import write_config

    from dropoutnet.console.app import Viewer, create_app

    async def editor(request):
        return Viewer("tester", True)

    config = write_config(tmp_path / "pipeline.yaml",
                          storage={"schema": db_schema.schema + "_empty"})
    url = db_schema.base_url if database == "empty" else "postgresql://nobody@127.0.0.1:9/none"
    monkeypatch.setenv("DROPOUTNET_DATABASE_URL", url)  # as the plugin's database_url() does
    app = create_app(editor, pipeline.rollback, lambda: url, config_path=str(config))
    server, base = _serve_in_thread(app)
    try:
        answers = {path: requests.get(base + path, timeout=30) for path in (
            "/", "/api/overview", "/versions", "/api/versions", "/history", "/api/quality",
            "/quality", "/api/compare", "/api/playground?user_id=u1", "/api/health")}
        made = requests.post(base + f"/api/versions/{V1}/make-live", json={"reason": "x"},
                             timeout=30)
    finally:
        server.should_exit = True
    for path, answer in answers.items():
        assert answer.status_code < 500 or answer.status_code == 503, (path, answer.text)
        assert "Traceback" not in answer.text
    if database == "unreachable":
        for path, answer in answers.items():
            if path != "/api/health":
                assert answer.status_code == 503 and "does not answer" in answer.text, path
        assert made.status_code == 503 and "nothing changed" in made.json()["error"]
        return
    assert answers["/api/overview"].json()["active"] is None
    assert "Run the daily DAG" in answers["/"].text
    assert answers["/api/versions"].json() == [] and "No version is published" in \
        answers["/versions"].text
    assert answers["/api/quality"].json()["points"] == []
    assert answers["/api/compare"].status_code == 404
    assert answers["/api/playground?user_id=u1"].status_code in (404, 503)
    assert made.status_code == 409 and "never published" in made.json()["error"]

@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which ``make test``
    installs when missing), driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DROPOUTNET_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_in_a_real_browser(console, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    shots = _screenshots(tmp_path)
    url = console["url"]

    # sign in to Airflow as the admin
    browser.get(url + "/")
    password = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                           "input[type=password]")))
    username = browser.find_element(By.CSS_SELECTOR, "input:not([type=password])")
    username.send_keys("admin")
    password.send_keys(PASSWORDS["admin"], Keys.ENTER)

    # DropoutNet is in the navigation; it opens the console inside Airflow's frame
    link = wait.until(ec.element_to_be_clickable((By.XPATH,
                                                  "//a[contains(@href, 'plugin/dropoutnet')]")))
    link.click()
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    active = wait.until(ec.presence_of_element_located((By.ID, "active-version")))
    assert V2 in active.text
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "overview.png"))

    def open_page(path: str, ready: tuple):
        browser.get(f"{url}/dropoutnet{path}")
        return wait.until(ec.presence_of_element_located(ready))

    # the quality chart has points, each a link to its version
    open_page("/quality?split=cold_items&k=10", (By.ID, "quality-chart"))
    points = browser.find_elements(By.CSS_SELECTOR, "#quality-chart circle.point")
    assert len(points) >= 2
    browser.save_screenshot(str(shots / "quality.png"))

    # make the older version live, with a reason, as a user would
    open_page("/versions", (By.ID, "versions"))
    browser.save_screenshot(str(shots / "versions.png"))
    browser.find_element(By.CSS_SELECTOR, f"button.make-live[data-version='{V1}']").click()
    dialog = wait.until(ec.visibility_of_element_located((By.ID, "make-live")))
    dialog.find_element(By.NAME, "reason").send_keys("checking the older model in the browser")
    browser.save_screenshot(str(shots / "make-live.png"))
    dialog.find_element(By.ID, "make-live-confirm").click()
    wait.until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f"tr[data-version='{V1}'] .state"), "active"))
    out = subprocess.run([sys.executable, "-m", "dropoutnet.cli", "versions"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert f"* {V1}" in out
    row = read(console, registry.activations)[0]
    assert (row["to_version"], row["actor"], row["reason"]) == (
        V1, "admin", "checking the older model in the browser")
    open_page("/history", (By.ID, "history"))
    browser.save_screenshot(str(shots / "history.png"))

    # the playground gives the CLI's list for the same user and N
    s = console["env"]["schema"]
    with console["env"]["conn"].cursor() as cur:
        cur.execute(f"select user_id from {s}.user_embeddings where model_version = '{V1}' "
                    "order by user_id desc limit 1")
        (user,), = cur.fetchall()
    open_page("/playground", (By.ID, "playground-form"))
    form = browser.find_element(By.ID, "playground-form")
    form.find_element(By.NAME, "user_id").send_keys(user)
    form.find_element(By.NAME, "n").send_keys("6")
    form.find_element(By.NAME, "other").send_keys(V2)
    form.submit()
    items = wait.until(ec.presence_of_all_elements_located(
        (By.CSS_SELECTOR, "#recall-items li[data-item]")))
    cli = _cli_recall("--user-id", user, "--top-n", "6")
    assert [i.get_attribute("data-item") for i in items] == [
        i["item_id"] for i in cli["items"]]
    browser.save_screenshot(str(shots / "playground.png"))
    for path, ready in (("/compare", "overlap"), (f"/versions/{V2}", "metrics")):
        open_page(path, (By.ID, ready))
        browser.save_screenshot(str(shots / f"{ready}.png"))
    open_page("/health", (By.CSS_SELECTOR, ".card"))
    browser.save_screenshot(str(shots / "health.png"))

    assert post(console, f"/api/versions/{V2}/make-live",
                body={"reason": "back"}).status_code == 200
