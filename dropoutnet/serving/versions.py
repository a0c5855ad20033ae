"""Model versions on disk, loaded in the background and switched without a failed request.

TensorFlow Serving's layout: ``<base path>/<version>/saved_model.pb`` with integer version
folders (ours: the bizdate as yyyymmdd).  A poller thread scans each model's base path:

* a new version is loaded in the poller thread (state LOADING), checked (a ``serving_default``
  signature with named inputs and outputs) and warmed up with a one-row request; only then
  does it become AVAILABLE, and requests without a version go to the newest AVAILABLE one;
* a version that fails any of that (a corrupt folder, a wrong signature) is END with its
  error in the status and never replaces a working one; it is retried only when its folder
  changes;
* the newest ``keep_versions`` AVAILABLE versions stay loaded; an older one (or one whose
  folder is gone) is UNLOADING until its in-flight requests end, then END and released
  (and loaded again if it is wanted again);
* a ``version_policy.json`` in the base path (written by :mod:`dropoutnet.steps.deploy`) is
  TensorFlow Serving's ``model_version_policy { specific { versions: N } }``:
  ``{"model_version_policy": {"specific": {"versions": [20261127]}}}``.  Then the versions
  loaded are the policy's versions on disk (instead of the newest ``keep_versions``),
  requests without a version go to the newest AVAILABLE one of them, and the other versions
  are retired once one of the policy's versions is AVAILABLE: until then the ones in service
  keep answering, so a switch (a rollback, the next deploy) never leaves a gap.  Without the
  file, the "latest" policy above; a malformed file is logged (with its path), shown in
  ``/healthz`` and ignored (the latest policy);
* a version folder replaced in place (a rerun of the bizdate) is loaded beside the one in
  service and swapped in when ready; if it fails, the loaded one keeps serving.

Requests hold a version with :meth:`ModelRepository.acquire` (a context manager), so a
version is never released under a running prediction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from dropoutnet.serving.requests import Columns, PredictDecoder
from dropoutnet.serving.signature import SIGNATURE, Signature, TensorInfo

log = logging.getLogger(__name__)

LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"
POLICY_FILE = "version_policy.json"
_POLICY_SHAPE = '{"model_version_policy": {"specific": {"versions": [<yyyymmdd>, ...]}}}'


class NotFound(LookupError):
    """An unknown model, or a version that is not loaded (HTTP 404)."""


@dataclass
class Version:
    """One version folder and what became of it."""

    number: int
    path: Path
    stamp: float                                # folder mtime when it was (tried to be) loaded
    state: str = LOADING
    error: str = ""
    signature: Signature | None = None
    predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    decoder: PredictDecoder | None = None      # its requests' fast parser
    in_flight: int = 0
    loaded_at: float = field(default_factory=time.time)
    failed_stamp: float | None = None           # a replacement folder that failed to load

    def predict_requests(self, parts: list[Columns]) -> dict[str, np.ndarray]:
        """One TensorFlow call for the decoded inputs of one or more requests: the outputs'
        rows are the requests' rows, in order."""
        return self.predict(self.decoder.arrays(parts))

    def status(self) -> dict[str, Any]:
        """This version's entry of TF Serving's ``model_version_status``: state and error."""
        return {"version": str(self.number), "state": self.state,
                "status": {"error_code": "UNKNOWN" if self.error else "OK",
                           "error_message": self.error}}


def _dtype_name(dtype) -> str:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _spec(name: str, spec) -> TensorInfo:
    shape = tuple(None if d is None else int(d) for d in spec.shape.as_list())
    return TensorInfo(name=name, dtype=_dtype_name(spec.dtype), shape=shape)


def _warmup_batch(signature: Signature) -> dict[str, np.ndarray]:
    batch = {}
    for name, info in signature.inputs.items():
        shape = (1,) + tuple(d or 1 for d in info.row_shape)
        batch[name] = (np.full(shape, "", dtype=object) if info.dtype == "DT_STRING"
                       else np.zeros(shape, dtype=np.float32 if info.dtype.startswith("DT_F")
                                     else np.int64))
    return batch


def _probe_batch(signature: Signature) -> dict[str, np.ndarray]:
    """Two rows with a different value in every input and row (so that inputs passed in the
    wrong order cannot give the right answer)."""
    batch = {}
    for i, (name, info) in enumerate(signature.inputs.items()):
        shape = (2,) + tuple(d or 2 for d in info.row_shape)
        count = int(np.prod(shape))
        values = np.arange(count).reshape(shape) + 10 * i
        batch[name] = (np.vectorize(lambda v: f"probe-{v}", otypes=[object])(values)
                       if info.dtype == "DT_STRING"
                       else values % 2 == 1 if info.dtype == "DT_BOOL"
                       else values * 0.37 if info.dtype.startswith(("DT_F", "DT_H", "DT_D", "DT_B"))
                       else values)
    return batch


def _flat_call(fn, dtypes: dict[str, Any], probe: dict[str, np.ndarray],
               public_call: Callable[[dict[str, np.ndarray]], dict[str, Any]]):
    """The signature called without binding its structured arguments: TensorFlow's own
    ``ConcreteFunction._call_flat`` (private), which skips the 0.3 ms a 17-input signature
    spends checking and flattening keyword arguments per call, held under the interpreter
    lock (``bench/serving.py``).  Requests are checked against the signature before they get
    here.  Used only when it exists and answers ``probe`` as the public call does; else None
    (the public call then serves)."""
    import tensorflow as tf

    call_flat = getattr(fn, "_call_flat", None)
    if call_flat is None:
        return None
    order = sorted(dtypes)  # tf.nest flattens keyword arguments by sorted name

    def call(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return call_flat([tf.constant(batch[k], dtype=dtypes[k]) for k in order],
                         fn.captured_inputs)

    try:
        got, want = call(probe), public_call(probe)
        same = isinstance(got, dict) and set(got) == set(want) and all(
            np.allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True) if a.dtype.kind in "fc"
            else np.array_equal(a, b)
            for a, b in ((got[k].numpy(), want[k].numpy()) for k in want))
    except Exception as err:  # noqa: BLE001 - any failure: the public call serves
        log.warning("the signature's flat call failed its probe (%s: %s); serving with the "
                    "public call", type(err).__name__, err)
        return None
    if not same:
        log.warning("the signature's flat call answered its probe differently; serving with "
                    "the public call")
        return None
    return call


def load_version(path: Path
                 ) -> tuple[Signature, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]]:
    """Load a SavedModel's ``serving_default``; raise ``ValueError`` with the reason if the
    folder is not a usable model."""
    import tensorflow as tf

    if not (path / "saved_model.pb").exists():
        raise ValueError(f"{path} has no saved_model.pb")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001 - TensorFlow raises many types for a bad folder
        raise ValueError(f"cannot load the SavedModel in {path}: "
                         f"{type(err).__name__}: {str(err).splitlines()[0][:300]}") from None
    if SIGNATURE not in loaded.signatures:
        raise ValueError(f"{path} has no {SIGNATURE!r} signature "
                         f"(it has {sorted(loaded.signatures) or 'none'})")
    fn = loaded.signatures[SIGNATURE]
    args, kwargs = fn.structured_input_signature
    if args or not kwargs:
        raise ValueError(f"the {SIGNATURE!r} signature of {path} must take named inputs")
    outputs = fn.structured_outputs
    if not isinstance(outputs, dict) or not outputs:
        raise ValueError(f"the {SIGNATURE!r} signature of {path} must return named outputs")
    signature = Signature(inputs={k: _spec(k, s) for k, s in sorted(kwargs.items())},
                          outputs={k: _spec(k, s) for k, s in sorted(outputs.items())})
    dtypes = {k: s.dtype for k, s in kwargs.items()}

    def public_call(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return fn(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in batch.items()})

    call = _flat_call(fn, dtypes, _probe_batch(signature), public_call) or public_call

    def predict(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in call(batch).items()}

    predict.flat_call = call is not public_call  # for the record (tests, the bench)

    predict.model = loaded  # keep the trackable objects alive with the function
    try:
        predict(_warmup_batch(signature))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"warm-up request on {path} failed: {type(err).__name__}: "
                         f"{str(err).splitlines()[0][:300]}") from None
    return signature, predict


def _version_folders(base: Path) -> dict[int, Path]:
    """Integer-named subfolders (hidden or temporary names are ignored)."""
    if not base.is_dir():
        return {}
    out = {}
    for child in base.iterdir():
        if child.is_dir() and child.name.isdigit():
            out[int(child.name)] = child
    return out


def parse_version_policy(text: str) -> list[int]:
    """The versions named by a ``version_policy.json`` text; ``ValueError`` says what is wrong.
    A version is an integer (or, as protobuf's JSON writes an int64, a string of digits)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err}); expected {_POLICY_SHAPE}") from None
    policy = data.get("model_version_policy") if isinstance(data, dict) else None
    specific = policy.get("specific") if isinstance(policy, dict) and len(policy) == 1 else None
    versions = specific.get("versions") if isinstance(specific, dict) else None
    if not isinstance(versions, list) or not versions:
        raise ValueError(f"expected {_POLICY_SHAPE} (the specific-versions policy, naming at "
                         "least one version)")
    out = set()
    for v in versions:
        if isinstance(v, str) and re.fullmatch(r"[0-9]+", v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"version {v!r} is not a non-negative integer; expected "
                             f"{_POLICY_SHAPE}")
        out.add(v)
    return sorted(out)


@dataclass(frozen=True)
class VersionPolicy:
    """A model's version policy: ``versions`` None is the "latest" policy (no valid file)."""

    versions: tuple[int, ...] | None = None
    error: str = ""                             # why the file was ignored

    def describe(self, keep_versions: int) -> dict[str, Any]:
        """As TF Serving's ``model_version_policy`` in JSON (plus the file's error, if any)."""
        if self.versions is not None:
            return {"specific": {"versions": list(self.versions)}}
        out: dict[str, Any] = {"latest": {"num_versions": keep_versions}}
        if self.error:
            out["error"] = self.error
        return out


def read_version_policy(base: Path) -> VersionPolicy:
    """The policy in ``base``'s ``version_policy.json``: the latest policy without the file,
    and with the error when it is malformed."""
    path = base / POLICY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return VersionPolicy()
    except (OSError, UnicodeDecodeError) as err:
        return VersionPolicy(error=f"{path}: cannot be read ({err}); ignored, serving the "
                                   "latest versions")
    try:
        return VersionPolicy(versions=tuple(parse_version_policy(text)))
    except ValueError as err:
        return VersionPolicy(error=f"{path}: {err}; ignored, serving the latest versions")


class ModelRepository:
    """The loaded versions of every served model, kept in step with their base paths."""

    def __init__(self, models: dict[str, Path], keep_versions: int = 2,
                 poll_seconds: float = 5.0,
                 on_change: Callable[[str, list[int]], None] | None = None) -> None:
        self.models = {name: Path(path) for name, path in models.items()}
        self.keep_versions = keep_versions
        self.poll_seconds = poll_seconds
        self.on_change = on_change
        self._versions: dict[str, dict[int, Version]] = {name: {} for name in self.models}
        self._policies: dict[str, VersionPolicy] = {name: VersionPolicy() for name in self.models}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Scan once (so the server starts with what is on disk), then poll in the background."""
        self.poll()
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poller thread (at the server's shutdown); loaded versions stay loaded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive a bad scan
                log.exception("model poll failed")

    # --- polling -----------------------------------------------------------------------------

    def poll(self) -> None:
        """Scan every model's base path once: load new or replaced versions, retire old ones."""
        for name, base in self.models.items():
            self._poll_model(name, base)

    def _poll_model(self, name: str, base: Path) -> None:
        # the policy before the folders: deploy writes a version's folder before naming it
        policy = self._poll_policy(name, base)
        on_disk = _version_folders(base)
        with self._lock:
            known = dict(self._versions[name])
        if policy.versions is None:
            wanted = sorted(on_disk, reverse=True)[: self.keep_versions]
        else:
            wanted = sorted((n for n in policy.versions if n in on_disk), reverse=True)
        for number in wanted:
            path = on_disk[number]
            try:
                stamp = path.stat().st_mtime
            except FileNotFoundError:
                continue
            seen = known.get(number)
            if seen is not None and (seen.state in (LOADING, UNLOADING)
                                     or seen.stamp == stamp and (seen.state == AVAILABLE
                                                                 or seen.error)
                                     or seen.failed_stamp == stamp):
                continue  # loaded (or refused) and unchanged since; a retired one is reloaded
            self._load(name, number, path, stamp, serving=seen if seen is not None and
                       seen.state == AVAILABLE else None)
        # a folder replaced by two renames is missing for an instant: look again before
        # unloading a version for being gone
        gone = set(known) - set(on_disk)
        if gone:
            time.sleep(0.05)
            on_disk = _version_folders(base)
        self._retire(name, set(on_disk), policy)

    def _poll_policy(self, name: str, base: Path) -> VersionPolicy:
        """Read the model's version policy; log it (and tell ``on_change``) when it changes."""
        policy = read_version_policy(base)
        with self._lock:
            previous, self._policies[name] = self._policies[name], policy
        if policy != previous:
            if policy.error:
                log.error("model %s: malformed version policy: %s", name, policy.error)
            elif policy.versions is None:
                log.info("model %s: no %s: serving the newest %d versions", name, POLICY_FILE,
                         self.keep_versions)
            else:
                log.info("model %s: version policy %s: serving versions %s", name,
                         base / POLICY_FILE, list(policy.versions))
            self._changed(name)
        return policy

    def _load(self, name: str, number: int, path: Path, stamp: float,
              serving: Version | None = None) -> None:
        """Load a version folder; ``serving`` is the AVAILABLE version it replaces (the same
        number, a folder replaced in place), which keeps serving unless the new one loads."""
        version = Version(number=number, path=path, stamp=stamp)
        if serving is None:
            with self._lock:
                self._versions[name][number] = version
        started = time.monotonic()
        try:
            signature, predict = load_version(path)
            decoder = PredictDecoder(signature)
        except ValueError as err:
            with self._lock:
                if serving is None:
                    version.state, version.error = END, str(err)
                else:
                    serving.failed_stamp = stamp
            log.error("model %s version %d refused%s: %s", name, number,
                      " (the loaded one keeps serving)" if serving else "", err)
            return
        with self._lock:
            version.signature, version.predict = signature, predict
            version.decoder = decoder
            version.state, version.loaded_at = AVAILABLE, time.time()
            if serving is not None:  # the folder was replaced: switch, then retire the old
                self._versions[name][number] = version
                serving.state = UNLOADING
                self._release_if_idle(serving)
            self._lock.notify_all()
        log.info("model %s version %d AVAILABLE (loaded and warmed up in %.2f s)%s", name,
                 number, time.monotonic() - started, " replacing its previous folder"
                 if serving else "")
        self._changed(name)

    def _retire(self, name: str, on_disk: set[int],
                policy: VersionPolicy = VersionPolicy()) -> None:
        """Unload AVAILABLE versions past the newest ``keep_versions`` (with a specific-versions
        policy: outside the policy, once one of its versions is AVAILABLE), or gone from disk."""
        with self._lock:
            available = sorted((n for n, v in self._versions[name].items()
                                if v.state == AVAILABLE), reverse=True)
            if policy.versions is None:
                keep = set(available[: self.keep_versions]) & on_disk
            else:
                # until a version of the policy is AVAILABLE, the ones in service keep answering
                keep = (set(available) & set(policy.versions) & on_disk
                        or set(available) & on_disk)
            retired = []
            for number in available:
                if number not in keep:
                    version = self._versions[name][number]
                    version.state = UNLOADING
                    retired.append(version)
            for version in retired:
                self._release_if_idle(version)
            # forget failed versions whose folder is gone
            for number in [n for n, v in self._versions[name].items()
                           if v.state == END and n not in on_disk]:
                del self._versions[name][number]
        if retired:
            log.info("model %s: unloading versions %s", name, [v.number for v in retired])
            self._changed(name)

    def _release_if_idle(self, version: Version) -> None:
        # caller holds the lock
        if version.state == UNLOADING and version.in_flight == 0:
            version.state, version.predict = END, None

    def _changed(self, name: str) -> None:
        if self.on_change is not None:
            self.on_change(name, self.available(name))

    # --- reading -----------------------------------------------------------------------------

    def check_model(self, name: str) -> None:
        """:class:`NotFound` (HTTP 404) unless ``name`` is a model this server serves."""
        if name not in self.models:
            raise NotFound(f"Servable not found for request: model {name!r} is not served "
                           f"here (served: {', '.join(sorted(self.models))})")

    def available(self, name: str) -> list[int]:
        """The model's AVAILABLE version numbers, oldest first."""
        with self._lock:
            return sorted(n for n, v in self._versions[name].items() if v.state == AVAILABLE)

    def policy(self, name: str) -> VersionPolicy:
        """The model's version policy as last read from its base path."""
        with self._lock:
            return self._policies[name]

    def default_version(self, name: str) -> int | None:
        """The version a request without a version goes to (None: none AVAILABLE)."""
        with self._lock:
            try:
                return self._pick(name, None).number
            except NotFound:
                return None

    def statuses(self, name: str, number: int | None = None) -> list[dict[str, Any]]:
        """TF Serving's ``model_version_status`` list of the model (newest first), or of one
        version; :class:`NotFound` for an unknown model or version."""
        self.check_model(name)
        with self._lock:
            versions = self._versions[name]
            if number is not None:
                if number not in versions:
                    raise NotFound(f"Servable not found for request: version {number} of "
                                   f"model {name!r} is not known to this server")
                return [versions[number].status()]
            return [v.status() for _, v in sorted(versions.items(), reverse=True)]

    def _pick(self, name: str, number: int | None) -> Version:
        # caller holds the lock
        versions = self._versions[name]
        if number is None:
            live = [v for n, v in sorted(versions.items(), reverse=True) if v.state == AVAILABLE]
            if not live:
                raise NotFound(f"Servable not found for request: model {name!r} has no "
                               f"available version yet (base path {self.models[name]})")
            pinned = self._policies[name].versions
            if pinned is not None:  # the policy's newest AVAILABLE; while none is, the newest
                live = [v for v in live if v.number in pinned] or live
            return live[0]
        version = versions.get(number)
        if version is None or version.state != AVAILABLE:
            raise NotFound(f"Servable not found for request: version {number} of model "
                           f"{name!r} is not available (available: "
                           f"{[n for n, v in versions.items() if v.state == AVAILABLE]})")
        return version

    @contextlib.contextmanager
    def acquire(self, name: str, number: int | None = None) -> Iterator[Version]:
        """Hold a version for one request: it is not released until the request ends."""
        self.check_model(name)
        with self._lock:
            version = self._pick(name, number)
            version.in_flight += 1
        try:
            yield version
        finally:
            with self._lock:
                version.in_flight -= 1
                self._release_if_idle(version)

    def wait_available(self, name: str, number: int | None = None,
                       timeout: float = 60.0) -> bool:
        """Block until ``name`` (version ``number``, or any) is AVAILABLE (tests, startup)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                versions = self._versions.get(name, {})
                if any(v.state == AVAILABLE and (number is None or n == number)
                       for n, v in versions.items()):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))


def configure_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op threads of this process (before any model loads)."""
    import tensorflow as tf

    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(threads, 2)))
    except RuntimeError:  # already initialised (a second app in one process): keep as is
        pass
