"""The model service: a real uvicorn server on a free port, real SavedModels, real HTTP.

Two tiny item towers (trained on the tiny data of test_model.py) play yesterday's and
today's versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dropoutnet-keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import ThreadedServer, free_port, wait_for  # noqa: E402
from test_model import make_config, make_data  # noqa: E402

from dropoutnet.registry import artifacts  # noqa: E402
from dropoutnet.serving.config import ConfigError, ServiceConfig, load_service_config  # noqa: E402
from dropoutnet.serving.versions import POLICY_FILE, VersionPolicy, read_version_policy
from dropoutnet.steps.deploy import _prune, write_version_policy  # noqa: E402
from dropoutnet.training.fit import train_model  # noqa: E402
from dropoutnet.training.saved_models import export_models, load_tower  # noqa: E402

MODEL = "items"
ITEM_INPUTS = ["i_age_bands_7d", "i_cate1", "i_ctr_7d", "i_duration", "i_tags", "i_title_emb"]


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """Two item towers that answer differently: (export folder, in-process embed) each."""
    features, labels, item_ids, boundaries = make_data(n=192)
    out = []
    for seed in (7, 8):
        root = tmp_path_factory.mktemp(f"tower{seed}")
        cfg = make_config(epochs=1, seed=seed)
        train_model(cfg, features, labels, boundaries, root / "ckpt", None, item_ids)
        export_models(cfg, root / "ckpt", root / "export")
        out.append((root / "export" / "item", load_tower(root / "export" / "item")))
    return out


def instances(n: int = 3) -> list[dict]:
    features = make_data(n=max(n, 8), seed=5)[0]
    rows = []
    for i in range(n):
        row = {}
        for name in ITEM_INPUTS:
            v = features[name][i]
            if isinstance(v, np.ndarray):
                row[name] = [float(x) for x in v]
            elif isinstance(v, (float, np.floating)):
                row[name] = None if np.isnan(v) else float(v)
            else:
                row[name] = str(v)
        rows.append(row)
    return rows


def columns(rows: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for name in ITEM_INPUTS:
        values = [r[name] for r in rows]
        if name in ("i_ctr_7d", "i_duration", "i_title_emb"):
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        else:
            out[name] = np.array(values, dtype=object)
    return out


class Server(ThreadedServer):
    """``create_app`` under a real uvicorn server in a thread, on ``config.port``."""

    def __init__(self, config: ServiceConfig) -> None:
        from dropoutnet.serving.app import create_app

        self.config = config
        self.app = create_app(config)
        super().__init__(self.app, config.port)

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict | str]:
        status, answer, _ = self.exchange(method, path, body, headers)
        return status, answer

    def predict(self, body, path=f"/v1/models/{MODEL}:predict", headers=None):
        return self.call("POST", path, body, headers)

    def health(self, model: str = MODEL) -> dict:
        return self.call("GET", "/healthz")[1]["models"][model]

    def versions(self) -> dict[str, str]:
        status, body = self.call("GET", f"/v1/models/{MODEL}")
        assert status == 200, body
        return {v["version"]: v["state"] for v in body["model_version_status"]}


def start_server(base: Path) -> Server:
    config = ServiceConfig(name=MODEL, model_path=base, port=free_port(), poll_seconds=0.2,
                           max_body_bytes=64 * 1024,
                           batching={"max_batch_size": 1000, "timeout_ms": 30})
    return Server(config)


@pytest.fixture
def served(tmp_path, towers):
    """A server polling a base path that holds version 20261127 (the first tower)."""
    base = tmp_path / "serving" / MODEL
    artifacts.copy_dir(towers[0][0], base / "20261127")
    server = start_server(base)
    wait_for(lambda: server.versions().get("20261127") == "AVAILABLE", what="first version")
    yield server, base
    server.stop()


def test_predictions_equal_the_in_process_model(served, towers):
    from dropoutnet.serving.versions import load_version

    server, _ = served
    rows = instances(4)
    expected = towers[0][1](columns(rows))
    assert load_version(towers[0][0])[1].flat_call  # the fast call passed its probe
    status, body = server.predict({"instances": rows})
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["predictions"]), expected, atol=1e-5)
    # columnar request, columnar answer; a named version
    status, body = server.predict({"inputs": {k: [r[k] for r in rows] for k in ITEM_INPUTS}},
                                  path=f"/v1/models/{MODEL}/versions/20261127:predict")
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["outputs"]), expected, atol=1e-5)
    # the same rows, sent as 8 concurrent one-row requests, are batched and split back
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: server.predict({"instances": [r]}), rows * 2))
    for (status, body), want in zip(answers, np.concatenate([expected, expected])):
        assert status == 200
        np.testing.assert_allclose(body["predictions"][0], want, atol=1e-5)
    status, text = server.call("GET", "/metrics")
    merged = [line for line in text.splitlines()
              if line.startswith("dropoutnet_serving_batch_requests_count")]
    calls = float(merged[0].split()[-1])
    assert calls < 2 + 8  # two single calls above, and fewer calls than the 8 requests


def test_metadata_status_and_health(served, towers):
    server, _ = served
    status, body = server.call("GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "20261127"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sorted(sig["inputs"]) == ITEM_INPUTS
    assert sig["inputs"]["i_cate1"]["dtype"] == "DT_STRING"
    assert sig["inputs"]["i_title_emb"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["i_title_emb"]["tensor_shape"]["dim"]] == ["-1", "4"]
    assert list(sig["outputs"]) == ["embedding"]
    assert [d["size"] for d in sig["outputs"]["embedding"]["tensor_shape"]["dim"]] == ["-1", "8"]

    status, body = server.call("GET", f"/v1/models/{MODEL}/versions/20261127")
    assert status == 200 and body == {"model_version_status": [{
        "version": "20261127", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}
    assert server.call("GET", "/healthz")[0] == 200
    status, text = server.call("GET", "/metrics")
    assert status == 200
    assert f'dropoutnet_serving_loaded_versions{{model="{MODEL}"}} 1.0' in text
    assert "dropoutnet_serving_request_seconds_bucket" in text


def test_a_new_version_is_served_without_a_failed_request(served, towers):
    server, base = served
    rows = instances(2)
    old, new = (t[1](columns(rows)) for t in towers)
    failures, answers, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            status, body = server.predict({"instances": rows})
            if status != 200:
                failures.append((status, body))
            else:
                answers.append(np.array(body["predictions"]))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.5)
        artifacts.copy_dir(towers[1][0], base / "20261128")  # what the DAG's deploy does
        wait_for(lambda: answers and np.allclose(answers[-1], new, atol=1e-5),
                 what="the new version's answers")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert not failures
    assert np.allclose(answers[0], old, atol=1e-5)
    # every answer is one version's or the other's, never a mix
    assert all(np.allclose(a, old, atol=1e-5) or np.allclose(a, new, atol=1e-5) for a in answers)
    assert server.versions() == {"20261128": "AVAILABLE", "20261127": "AVAILABLE"}
    # keep_versions (2): a third version retires the oldest
    artifacts.copy_dir(towers[0][0], base / "20261129")
    wait_for(lambda: server.versions().get("20261127") == "END", what="the oldest to unload")
    assert server.versions() == {"20261129": "AVAILABLE", "20261128": "AVAILABLE",
                                 "20261127": "END"}


def test_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(served, towers):
    server, base = served
    rows = instances(2)
    broken = base / "20261128"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    wait_for(lambda: "20261128" in server.versions(), what="the broken version's status")
    status, body = server.call("GET", f"/v1/models/{MODEL}/versions/20261128")
    entry = body["model_version_status"][0]
    assert entry["state"] == "END" and entry["status"]["error_code"] == "UNKNOWN"
    assert "cannot load the SavedModel" in entry["status"]["error_message"]
    status, body = server.predict({"instances": rows})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], towers[0][1](columns(rows)), atol=1e-5)
    assert server.call("GET", "/healthz")[0] == 200
    # a folder with another signature name is refused too
    wrong = base / "20261129"
    artifacts.copy_dir(towers[1][0], wrong)
    pb = (wrong / "saved_model.pb").read_bytes().replace(b"serving_default", b"serving_defaulx")
    (wrong / "saved_model.pb").write_bytes(pb)
    wait_for(lambda: server.versions().get("20261129") == "END", what="the wrong signature")
    assert server.predict({"instances": rows})[0] == 200
    assert server.call("GET", f"/v1/models/{MODEL}/metadata")[1]["model_spec"]["version"] == \
        "20261127"


def metric(text: str, name: str) -> float:
    prefix = f'{name}{{model="{MODEL}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).split()[-1])


def test_every_prediction_names_its_version(served):
    server, _ = served
    rows = instances(2)
    for body, path in [
            ({"instances": rows}, f"/v1/models/{MODEL}:predict"),
            ({"inputs": {k: [r[k] for r in rows] for k in ITEM_INPUTS}},
             f"/v1/models/{MODEL}:predict"),
            ({"instances": rows}, f"/v1/models/{MODEL}/versions/20261127:predict")]:
        status, answer, headers = server.exchange("POST", path, body)
        assert status == 200, answer
        # TF Serving's body, plus the version that computed it
        assert set(answer) in ({"predictions", "model_version"}, {"outputs", "model_version"})
        assert answer["model_version"] == "20261127"
        assert headers["x-model-version"] == "20261127"
    with ThreadPoolExecutor(4) as pool:  # merged into one TensorFlow call, split back
        answers = list(pool.map(lambda r: server.exchange(
            "POST", f"/v1/models/{MODEL}:predict", {"instances": [r]}), rows * 4))
    assert all(status == 200 and answer["model_version"] == "20261127"
               and headers["x-model-version"] == "20261127"
               for status, answer, headers in answers)
    status, answer, headers = server.exchange("POST", f"/v1/models/{MODEL}:predict",
                                              {"instances": []})
    assert status == 400 and set(answer) == {"error"} and "x-model-version" not in headers


def test_the_version_policy_pins_the_served_version_and_switches_without_a_gap(tmp_path,
                                                                              towers):
    base = tmp_path / "serving" / MODEL
    artifacts.copy_dir(towers[0][0], base / "20261127")
    artifacts.copy_dir(towers[1][0], base / "20261128")
    write_version_policy(base, ["20261127"])  # deploy after `dropoutnet rollback --to 20261127`
    rows = instances(2)
    want = {"20261127": towers[0][1](columns(rows)), "20261128": towers[1][1](columns(rows))}
    server = start_server(base)
    try:
        wait_for(lambda: server.versions().get("20261127") == "AVAILABLE",
                 what="the pinned version")
        time.sleep(0.6)  # a few polls: the newer folder on disk is not loaded
        assert server.versions() == {"20261127": "AVAILABLE"}
        status, body = server.predict({"instances": rows})
        assert status == 200 and body["model_version"] == "20261127"
        np.testing.assert_allclose(body["predictions"], want["20261127"], atol=1e-5)
        status, body = server.predict({"instances": rows},
                                      path=f"/v1/models/{MODEL}/versions/20261128:predict")
        assert status == 404 and "not available" in body["error"]
        health = server.health()
        assert health["default_version"] == 20261127
        assert health["version_policy"] == {"specific": {"versions": [20261127]}}
        text = server.call("GET", "/metrics")[1]
        assert metric(text, "dropoutnet_serving_policy_version") == 20261127
        assert metric(text, "dropoutnet_serving_default_version") == 20261127
        assert metric(text, "dropoutnet_serving_policy_error") == 0

        def switch(to: str, old: str) -> None:
            """Pin ``to`` while a client keeps calling: no request fails, the old version
            answers until the new one is loaded, then only the new one does."""
            failures, seen, wrong, stop = [], [], [], threading.Event()

            def client():
                while not stop.is_set():
                    status, body = server.predict({"instances": rows})
                    if status != 200:
                        failures.append((status, body))
                        continue
                    seen.append(body["model_version"])
                    if not np.allclose(body["predictions"], want[seen[-1]], atol=1e-5):
                        wrong.append(seen[-1])

            thread = threading.Thread(target=client)
            thread.start()
            try:
                wait_for(lambda: len(seen) >= 3, what="answers before the switch")
                write_version_policy(base, [to])
                wait_for(lambda: seen and seen[-1] == to, what=f"answers from {to}")
                wait_for(lambda: server.versions().get(old) == "END", what=f"{old} retired")
                time.sleep(0.3)
            finally:
                stop.set()
                thread.join()
            assert not failures and not wrong
            first = seen.index(to)
            assert first > 0 and set(seen[:first]) == {old} and set(seen[first:]) == {to}
            assert server.versions() == {to: "AVAILABLE", old: "END"}
            assert server.health()["default_version"] == int(to)

        switch("20261128", "20261127")  # the next publish
        switch("20261127", "20261128")  # a rollback: the retired version is loaded again
    finally:
        server.stop()


def test_a_malformed_policy_is_reported_and_the_latest_versions_served(tmp_path, towers,
                                                                       caplog):
    base = tmp_path / "serving" / MODEL
    artifacts.copy_dir(towers[0][0], base / "20261127")
    artifacts.copy_dir(towers[1][0], base / "20261128")
    policy_file = base / POLICY_FILE
    policy_file.write_text('{"model_version_policy": {"specific": {"versions": ["latest"]}}}')
    rows = instances(2)
    server = start_server(base)
    try:
        wait_for(lambda: server.versions() == {"20261128": "AVAILABLE",
                                               "20261127": "AVAILABLE"}, what="both versions")
        status, body = server.predict({"instances": rows})
        assert status == 200 and body["model_version"] == "20261128"  # the latest policy
        policy = server.health()["version_policy"]
        assert policy["latest"] == {"num_versions": 2}
        assert str(policy_file) in policy["error"] and "version 'latest' is not" in policy["error"]
        assert metric(server.call("GET", "/metrics")[1], "dropoutnet_serving_policy_error") == 1
        assert any(r.levelname == "ERROR" and str(policy_file) in r.getMessage()
                   for r in caplog.records)
        # bad JSON: ignored as well, and the poller lives on to read a valid policy
        policy_file.write_text('{"model_version_policy": ')
        wait_for(lambda: "not valid JSON" in server.health()["version_policy"].get("error", ""),
                 what="the new error")
        assert server.predict({"instances": rows})[1]["model_version"] == "20261128"
        write_version_policy(base, ["20261127"])
        wait_for(lambda: server.versions().get("20261128") == "END", what="20261128 retired")
        assert server.predict({"instances": rows})[1]["model_version"] == "20261127"
        assert server.health()["version_policy"] == {"specific": {"versions": [20261127]}}
        assert metric(server.call("GET", "/metrics")[1], "dropoutnet_serving_policy_error") == 0
    finally:
        server.stop()


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[20261127]", "the specific-versions policy"),
    ('{"model_version_policy": {"latest": {"num_versions": 1}}}', "the specific-versions policy"),
    ('{"model_version_policy": {"specific": {"versions": []}}}', "naming at least one version"),
    ('{"model_version_policy": {"specific": {"versions": [2026.5]}}}', "version 2026.5 is not"),
    ('{"model_version_policy": {"specific": {"versions": [true]}}}', "version True is not"),
])
def test_a_malformed_policy_file_is_ignored_with_its_path_and_problem(tmp_path, text, message):
    (tmp_path / POLICY_FILE).write_text(text)
    policy = read_version_policy(tmp_path)
    assert policy.versions is None  # the latest policy
    assert str(tmp_path / POLICY_FILE) in policy.error and message in policy.error
    assert read_version_policy(tmp_path / "nope") == VersionPolicy()  # no file: latest


def test_deploy_writes_the_policy_and_never_prunes_a_pinned_version(tmp_path):
    model_dir = tmp_path / MODEL
    for day in range(1, 7):
        (model_dir / f"202611{day:02d}").mkdir(parents=True)
    path = write_version_policy(model_dir, ["20261102"])
    assert path == model_dir / POLICY_FILE
    assert json.loads(path.read_text()) == {
        "model_version_policy": {"specific": {"versions": [20261102]}}}
    assert [p.name for p in model_dir.iterdir() if not p.is_dir()] == [POLICY_FILE]  # no temp
    assert read_version_policy(model_dir).versions == (20261102,)
    # deploying 20261101 (a rollback), keeping 3: the newest 3, the version being deployed
    # and the one the policy in force names stay
    assert _prune(model_dir, 3, "20261101") == ["20261103"]
    write_version_policy(model_dir, ["20261101"])
    assert read_version_policy(model_dir).versions == (20261101,)
    with pytest.raises(ValueError, match="integer versions"):
        write_version_policy(model_dir, ["latest"])


@pytest.mark.parametrize("body, status, message", [
    ({"instance": []}, 400, "unknown field(s) ['instance']"),
    ({"instances": [{**instances(1)[0], "i_duration": "long"}]}, 400,
     "instances[0]: expected a number for input 'i_duration', got str"),
    ({"instances": [{**instances(1)[0], "i_title_emb": [1.0, 2.0]}]}, 400,
     "input 'i_title_emb' expects a list of shape [4] of numbers per instance, got a list of "
     "length 2"),
    ({"instances": [{k: v for k, v in instances(1)[0].items() if k != "i_tags"}]}, 400,
     "missing input(s) ['i_tags']"),
    ({"instances": []}, 400, "\"instances\" is empty"),
    (b"", 400, "the request body is empty"),
    (b'{"instances": [', 400, "the request body is not valid JSON"),
    (b"[" + b"1," * 40000 + b"1]", 413, "over the limit of 65536 bytes"),
    # far over the socket buffers: the client still gets the 413, not a reset connection
    (b"[" + b"1," * 8_000_000 + b"1]", 413, "over the limit of 65536 bytes"),
    ({"instances": instances(1), "inputs": {}}, 400, "exactly one of \"instances\""),
    ({"instances": instances(1), "signature_name": "other"}, 400,
     "signature_name 'other' not found"),
    ({"inputs": {**{k: [v] for k, v in instances(1)[0].items()}, "i_cate1": ["a", "b"]}}, 400,
     "inputs['i_cate1'] has 2 rows but the other inputs have 1"),
])
def test_malformed_requests_get_a_status_and_a_message(served, body, status, message):
    server, _ = served
    got, answer = server.predict(body)
    assert got == status and message in answer["error"], answer


FAST_SIGNATURE_INPUTS = {  # name: (dtype, row shape): every kind of input the fast path types
    "city": ("DT_STRING", ()), "ctr": ("DT_FLOAT", ()), "emb": ("DT_FLOAT", (3,)),
    "count": ("DT_INT64", ()), "flag": ("DT_BOOL", ()), "grid": ("DT_DOUBLE", (2, 2)),
    "words": ("DT_STRING", (None,)), "input with spaces": ("DT_STRING", ())}
GOOD = {"city": "Hangzhou", "ctr": 0.25, "emb": [1, 2.5, -3e-3], "count": 7, "flag": True,
        "grid": [[1, 2], [3, 4]], "words": ["a", "b"], "input with spaces": "x"}


PLAIN = [{"instances": [GOOD, {**GOOD, "city": None, "ctr": None, "words": ["c"]}]},
         {"instances": [GOOD], "signature_name": "serving_default"}]
OTHER = [
    {"inputs": {k: [v] for k, v in GOOD.items()}},                # columnar: the general parser
    {"instances": [{**GOOD, "city": {"b64": "SGk="}}]},           # b64: the general parser
    {"instances": [{**GOOD, "count": 7.0, "emb": [1, None, 2]}]},  # likewise
    {"instances": [{**GOOD, "ctr": "high"}]},
    {"instances": [{**GOOD, "ctr": True, "count": False}]},
    {"instances": [{**GOOD, "emb": [1, 2]}]},
    {"instances": [{**GOOD, "grid": [[1, 2], [3]]}]},
    {"instances": [{**GOOD, "count": 2 ** 64}]},
    {"instances": [{**GOOD, "count": None}]},
    {"instances": [{**GOOD, "flag": 1}]},
    {"instances": [{**GOOD, "other": 1}]},
    {"instances": [{k: v for k, v in GOOD.items() if k != "city"}]},
    {"instances": [{**GOOD, "words": ["a", None]}]},
    {"instances": [GOOD, {**GOOD, "words": [["a"]]}]},
    {"instances": []}, {"instances": [GOOD], "signature_name": "other"}, {"instance": [GOOD]},
    [GOOD], b"", b"{", b'{"instances": [NaN]}',
]


@pytest.mark.parametrize("body, fast", [(b, True) for b in PLAIN] + [(b, False) for b in OTHER])
def test_the_fast_parser_answers_as_the_general_parser(body, fast):
    """PredictDecoder (msgspec) gives parse_body's arrays, or raises its error message."""
    from dropoutnet.serving.requests import BadRequest, PredictDecoder, parse_body
    from dropoutnet.serving.signature import Signature, TensorInfo

    signature = Signature(
        inputs={k: TensorInfo(k, dtype, (None, *shape))
                for k, (dtype, shape) in FAST_SIGNATURE_INPUTS.items()},
        outputs={"emb": TensorInfo("emb", "DT_FLOAT", (None, 3))})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    decoder = PredictDecoder(signature)
    try:
        want = parse_body(raw, signature)
    except BadRequest as err:
        with pytest.raises(BadRequest) as got:
            decoder.decode(raw)
        assert str(got.value) == str(err)
        return
    columns, fmt, rows = decoder.decode(raw)
    assert (fmt, rows) == want[1:]
    # plain instances take the fast path (its columns are tuples, made into arrays per call)
    assert isinstance(columns["city"], tuple) == fast
    twice = decoder.arrays([columns, columns])  # a batch of two requests: rows in order
    for name, array in decoder.arrays([columns]).items():
        expected = want[0][name]
        assert array.dtype == expected.dtype and array.shape == expected.shape, name
        np.testing.assert_array_equal(array, expected)
        np.testing.assert_array_equal(twice[name], np.concatenate([expected, expected]))


def test_unknown_model_or_version_is_404(served):
    server, _ = served
    status, body = server.predict({"instances": instances(1)}, path="/v1/models/nope:predict")
    assert status == 404 and "model 'nope' is not served here" in body["error"]
    status, body = server.call("GET", f"/v1/models/{MODEL}/versions/20200101")
    assert status == 404 and "version 20200101" in body["error"]
    status, body = server.predict({"instances": instances(1)},
                                  path=f"/v1/models/{MODEL}/versions/20200101:predict")
    assert status == 404 and "not available" in body["error"]
    status, body = server.call("GET", f"/v1/models/{MODEL}:predict")
    assert status == 405 and "method GET is not allowed" in body["error"]


def test_the_bearer_token_is_enforced_when_set(served, monkeypatch):
    server, _ = served
    monkeypatch.setenv("DROPOUTNET_SERVING_TOKEN", "s3cret")
    status, body = server.predict({"instances": instances(1)})
    assert status == 401 and "bearer token" in body["error"]
    assert server.predict({"instances": instances(1)},
                          headers={"Authorization": "Bearer wrong"})[0] == 401
    assert server.predict({"instances": instances(1)},
                          headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert server.call("GET", f"/v1/models/{MODEL}")[0] == 401
    assert server.call("GET", "/healthz")[0] == 200  # probes need no token


def test_service_config_errors_name_the_problem(tmp_path):
    path = tmp_path / "svc.json"
    path.write_text('{"name": "x", "model_path": "m", "processor": "pytorch"}')
    with pytest.raises(ConfigError, match="unknown processor 'pytorch'"):
        load_service_config(path)
    path.write_text('{"name": "x", "model_path": "m", "metadata": {"cpu": 0, "gpu": 1}}')
    with pytest.raises(ConfigError) as err:
        load_service_config(path)
    assert "metadata.cpu" in str(err.value) and "metadata.gpu: unknown key" in str(err.value)
    path.write_text('{"name": "x",')
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_service_config(path)


def test_service_create_desc_modify_stop(tmp_path, towers):
    """The eascmd-style commands, through the CLI, with a real background server."""
    base = tmp_path / "serving" / MODEL
    artifacts.copy_dir(towers[0][0], base / "20261127")
    port = free_port()
    config = {"name": MODEL, "model_path": "serving/" + MODEL, "processor": "tensorflow_cpu",
              "metadata": {"cpu": 1, "instance": 1, "memory": 1000}, "port": port,
              "poll_seconds": 0.5}
    (tmp_path / "svc.json").write_text(json.dumps(config))
    env = {**os.environ, "DROPOUTNET_HOME": str(tmp_path / "home")}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dropoutnet.cli", "service", *args],
                              capture_output=True, text=True, env=env, timeout=180,
                              cwd=tmp_path)

    try:
        proc = cli("create", "svc.json")
        assert proc.returncode == 0, proc.stderr
        assert "status    Running" in proc.stdout and f"http://127.0.0.1:{port}" in proc.stdout
        assert "20261127 AVAILABLE" in proc.stdout
        proc = cli("create", "svc.json")
        assert proc.returncode == 1 and "already running" in proc.stderr

        config["keep_versions"] = 1
        (tmp_path / "svc2.json").write_text(json.dumps(config))
        proc = cli("modify", MODEL, "svc2.json", "--json")
        assert proc.returncode == 0, proc.stderr
        d = json.loads(proc.stdout)
        assert d["status"] == "Running" and d["config"]["keep_versions"] == 1
        assert d["config"]["model_path"] == str(base)
        assert d["models"][MODEL][0]["state"] == "AVAILABLE"

        proc = cli("stop", MODEL)
        assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "Stopped"
        proc = cli("desc", MODEL)
        assert proc.returncode == 0 and "status    Stopped" in proc.stdout
        proc = cli("desc", "nope")
        assert proc.returncode == 1 and "no service 'nope'" in proc.stderr
    finally:
        cli("stop", MODEL)
