"""MovieLens 100K: the daily pipeline's raw tables.

Real data for the pipeline
--------------------------
MovieLens 100K (GroupLens, University of Minnesota) holds 100,000 ratings (1-5) by 943 users
of 1,682 movies, from 1997-09-20 to 1998-04-22, with user demographics and movie genres. Its
terms allow research use only and forbid redistribution: the files are never copied into this
repository; point ``--path`` at your own copy (here ``../shared/datasets/ml-100k``). Load it
and run the daily pipeline, unchanged, on its last weeks::

    dropoutnet datasets load movielens-100k --path ../shared/datasets/ml-100k
    export DROPOUTNET_CONFIG=config/movielens-100k.yaml
    for d in 1998-04-18 1998-04-19 1998-04-20; do dropoutnet run --bizdate $d; done
    dropoutnet metrics --bizdate 1998-04-18
    dropoutnet metrics --bizdate 1998-04-20

1998-04-18 (4 new movies) and 1998-04-20 (2) are the last days with new movies; 1998-04-19
has none (its metrics are empty) but keeps the daily warm-start chain (each bizdate restores
the previous day's checkpoint). Any earlier day works the same way, e.g. 1998-04-05 (9 new
movies); a run takes about a minute and a half on 2 cores.

(``--schema S`` puts the tables in schema ``S`` instead of the first schema of the search
path; then set ``schema: S`` on every ``raw`` table of the config.) Old bizdates are fine: the
pipeline only refuses bizdates after today. The load replaces the five tables in one
transaction (drop, create, ``COPY``): a missing file or a malformed row is reported with the
file, the line number and what was expected, and leaves the previous tables untouched.

The mapping (``config/movielens-100k.yaml`` reads these tables):

==================  =========================================================================
table               columns
==================  =========================================================================
``ml_users``        ``user_id`` (the MovieLens id as text), ``age`` (int), ``age_band``
                    (``under18``, ``18-24``, ``25-34``, ``35-44``, ``45-49``, ``50-55``, ``56+``:
                    the MovieLens 1M bands), ``gender`` (``M``/``F``), ``occupation``, ``zip``,
                    ``zip_region`` (first digit of a US zip code: the national area, ``0``-``9``;
                    ``other`` for non-US codes), ``zip3`` (first three characters),
                    ``register_time`` = the user's first rating
``ml_items``        ``item_id``, ``author_id`` (see below), ``title``, ``year`` (from the release
                    date, else the ``(1995)`` in the title), ``decade`` (``1990s``),
                    ``release_date``, ``video_release_date``, ``imdb_url``, ``category`` (the
                    primary genre), ``tags`` (``text[]`` of every genre), ``n_genres``,
                    ``create_time`` = the movie's first rating (its "publish time"),
                    ``release_age_days`` = days from the release date to ``create_time``: how
                    new the movie is when it appears (NULL without a release date)
``ml_authors``      ``author_id``, ``genre``: one row per primary genre
``ml_item_text``    ``item_id``, ``title_embedding vector(16)`` (a signed hashed bag of the
                    title's words, the year left out, L2-normalised), ``genre_vector
                    vector(19)`` (the 19 genre flags)
``ml_events``       ``user_id``, ``item_id``, ``event_type``, ``event_time``, ``rating``: every
                    rating is an ``impression`` at its time and a rating >= 4 also a ``click``
                    at the same time (the label is ``max(click)``, as in the demo config)
==================  =========================================================================

Movies have no author. The pipeline needs one (``items.author_id``): the loader uses the
movie's **primary genre**, the first of its genre flags in MovieLens order (Action, Adventure,
Animation, Children's, Comedy, Crime, Documentary, Drama, ...; ``unknown`` only when it has no
other), as a "channel" that publishes movies of that genre. The pipeline's popularity baseline
(a new item's author's clicks in the window) thereby becomes primary-genre popularity. A movie
never rated has no publish time (``create_time`` NULL) and is never a candidate; a user who
never rated has a NULL ``register_time``. Neither happens in MovieLens 100K itself.

The cold items of a bizdate are the movies first rated that day; their eval samples are the
ratings of that day. On MovieLens that is a handful of movies and ratings per day (the daily
metrics are very noisy), which is why the benchmark below exists.

The time-based item-cold benchmark on these files is
:mod:`dropoutnet.benchmarks.movielens`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

NAME = "movielens-100k"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
REQUIRED_FILES = ("u.data", "u.item", "u.user")


class DatasetError(ValueError):
    """A dataset folder that cannot be loaded: the message names the file, line and problem."""

TABLES = ("ml_users", "ml_authors", "ml_items", "ml_item_text", "ml_events")
TEXT_DIM = 16
CLICK_MIN_RATING = 4
AGE_BANDS = ((18, "under18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"),
             (56, "50-55"), (10**9, "56+"))
_MONTHS = {m: k for k, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                       "sep", "oct", "nov", "dec"), 1)}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")
_WORD = re.compile(r"[a-z0-9]+")


# --- reading and validating the files ------------------------------------------------------


@dataclass(frozen=True)
class MovieLens:
    """The parsed files, as numpy arrays (ids are the MovieLens integers)."""

    path: Path
    user_ids: np.ndarray          # (n_users,) int64, in file order
    ages: np.ndarray              # (n_users,) int64
    genders: np.ndarray           # (n_users,) object
    occupations: np.ndarray       # (n_users,) object
    zips: np.ndarray              # (n_users,) object
    item_ids: np.ndarray          # (n_items,) int64, in file order
    titles: np.ndarray            # (n_items,) object
    release_dates: list           # (n_items,) datetime.date | None
    video_dates: list             # (n_items,) datetime.date | None
    urls: np.ndarray              # (n_items,) object
    genres: np.ndarray            # (n_items, 19) int8 genre flags
    r_user: np.ndarray            # (n_ratings,) int64
    r_item: np.ndarray
    r_rating: np.ndarray
    r_time: np.ndarray            # unix seconds (UTC)
    # publish times kept from before some ratings were removed (:func:`without_ratings_of`);
    # None: each movie's first rating in r_time
    publish_times: np.ndarray | None = None

    def first_rating_time(self, ids: np.ndarray, rated: np.ndarray) -> np.ndarray:
        """Per id of ``ids``: the earliest rating time of ratings whose id (``rated``) matches;
        ``-1`` when there is none."""
        pos = {int(v): k for k, v in enumerate(ids)}
        first = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, np.array([pos[int(v)] for v in rated], dtype=np.int64), self.r_time)
        first[first == np.iinfo(np.int64).max] = -1
        return first

    @property
    def item_publish_time(self) -> np.ndarray:
        """Per movie (file order): its publish time, the first rating's unix seconds (-1 when
        never rated); after :func:`without_ratings_of`, the times from before the removal."""
        if self.publish_times is not None:
            return self.publish_times
        return self.first_rating_time(self.item_ids, self.r_item)

    @property
    def user_first_time(self) -> np.ndarray:
        """Per user (file order): the first rating's unix seconds, taken as the register time
        (-1 when the user has no rating)."""
        return self.first_rating_time(self.user_ids, self.r_user)


def _lines(path: Path, encoding: str):
    """(line number, line without its newline) of a file, skipping blank lines."""
    with open(path, encoding=encoding, newline="") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield n, line


def _date(text: str) -> dt.date | None:
    """``01-Jan-1995`` (MovieLens' release dates); None for an empty field."""
    if not text:
        return None
    parts = text.split("-")
    if len(parts) != 3 or parts[1].lower() not in _MONTHS:
        raise ValueError(text)
    return dt.date(int(parts[2]), _MONTHS[parts[1].lower()], int(parts[0]))


def _check_files(path: Path) -> None:
    if not path.is_dir():
        raise DatasetError(f"{NAME}: {path} is not a folder; pass --path with the folder that "
                           f"holds the MovieLens 100K files {', '.join(REQUIRED_FILES)}")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise DatasetError(
            f"{NAME}: {', '.join(str(path / f) for f in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; a MovieLens 100K folder has "
            f"{', '.join(REQUIRED_FILES)} (ratings, movies, users)")


def _read_users(path: Path) -> dict[str, np.ndarray]:
    expected = ("expected 5 '|'-separated fields user id (integer), age (integer 1-120), "
                "gender (M or F), occupation, zip code")
    ids, ages, genders, occs, zips = [], [], [], [], []
    seen: dict[int, int] = {}
    for n, line in _lines(path, "latin-1"):
        f = line.split("|")
        ok = len(f) == 5 and f[0].isdigit() and f[1].isdigit() and f[2] in ("M", "F") \
            and f[3].strip() != "" and f[4].strip() != "" and 1 <= int(f[1]) <= 120
        if not ok:
            raise DatasetError(f"{path} line {n}: {expected}; got {line!r}")
        uid = int(f[0])
        if uid in seen:
            raise DatasetError(f"{path} line {n}: user id {uid} repeats line {seen[uid]}; "
                               "expected one line per user")
        seen[uid] = n
        ids.append(uid)
        ages.append(int(f[1]))
        genders.append(f[2])
        occs.append(f[3].strip())
        zips.append(f[4].strip())
    if not ids:
        raise DatasetError(f"{path}: no users; expected one line per user")
    return {"user_ids": np.array(ids, dtype=np.int64), "ages": np.array(ages, dtype=np.int64),
            "genders": np.array(genders, dtype=object), "occupations": np.array(occs, dtype=object),
            "zips": np.array(zips, dtype=object)}


def _read_items(path: Path) -> dict[str, Any]:
    expected = ("expected 24 '|'-separated fields movie id (integer), title, release date "
                "(like 01-Jan-1995, or empty), video release date, IMDb URL and 19 genre flags "
                "(0 or 1)")
    ids, titles, rel, vid, urls, flags = [], [], [], [], [], []
    seen: dict[int, int] = {}
    for n, line in _lines(path, "latin-1"):
        f = line.split("|")
        ok = len(f) == 24 and f[0].isdigit() and all(g in ("0", "1") for g in f[5:])
        dates = None
        if ok:
            try:
                dates = _date(f[2].strip()), _date(f[3].strip())
            except ValueError:
                ok = False
        if not ok:
            raise DatasetError(f"{path} line {n}: {expected}; got {line!r}")
        iid = int(f[0])
        if iid in seen:
            raise DatasetError(f"{path} line {n}: movie id {iid} repeats line {seen[iid]}; "
                               "expected one line per movie")
        seen[iid] = n
        ids.append(iid)
        titles.append(f[1].strip())
        rel.append(dates[0])
        vid.append(dates[1])
        urls.append(f[4].strip())
        flags.append([int(g) for g in f[5:]])
    if not ids:
        raise DatasetError(f"{path}: no movies; expected one line per movie")
    return {"item_ids": np.array(ids, dtype=np.int64), "titles": np.array(titles, dtype=object),
            "release_dates": rel, "video_dates": vid, "urls": np.array(urls, dtype=object),
            "genres": np.array(flags, dtype=np.int8)}


def _read_ratings(path: Path, users: set[int], items: set[int]) -> dict[str, np.ndarray]:
    expected = ("expected 4 tab-separated integers user, item, rating, timestamp "
                "(rating 1-5, timestamp in unix seconds)")
    rows: list[tuple[int, int, int, int]] = []
    for n, line in _lines(path, "latin-1"):
        f = line.split("\t")
        if len(f) != 4 or not all(x.strip().isdigit() for x in f):
            raise DatasetError(f"{path} line {n}: {expected}; got {line!r}")
        u, i, r, t = (int(x) for x in f)
        if not 1 <= r <= 5 or t <= 0:
            raise DatasetError(f"{path} line {n}: {expected}; got {line!r}")
        if u not in users:
            raise DatasetError(f"{path} line {n}: user {u} is not in u.user; expected ratings of "
                               f"known users; got {line!r}")
        if i not in items:
            raise DatasetError(f"{path} line {n}: movie {i} is not in u.item; expected ratings "
                               f"of known movies; got {line!r}")
        rows.append((u, i, r, t))
    if not rows:
        raise DatasetError(f"{path}: no ratings; expected one rating per line")
    a = np.array(rows, dtype=np.int64)
    return {"r_user": a[:, 0], "r_item": a[:, 1], "r_rating": a[:, 2], "r_time": a[:, 3]}


def read(path: str | Path) -> MovieLens:
    """Parse and validate a MovieLens 100K folder; raise :class:`DatasetError` on bad input."""
    path = Path(path)
    _check_files(path)
    users = _read_users(path / "u.user")
    items = _read_items(path / "u.item")
    ratings = _read_ratings(path / "u.data", set(users["user_ids"].tolist()),
                            set(items["item_ids"].tolist()))
    return MovieLens(path=path, **users, **items, **ratings)


def ratings_before(ml: MovieLens, before: int) -> MovieLens:
    """The same dataset with only the ratings before unix time ``before``: what was known at
    that moment (a benchmark's validation split is carved from it, never from later ratings)."""
    return _keep_ratings(ml, ml.r_time < before)


def without_ratings_of(ml: MovieLens, items: np.ndarray) -> MovieLens:
    """The same dataset without any rating of ``items``, which keep their publish times: movies
    that appeared and have no behaviour yet (a validation split's pseudo-cold movies)."""
    return _keep_ratings(ml, ~np.isin(ml.r_item, items), publish_times=ml.item_publish_time)


def _keep_ratings(ml: MovieLens, keep: np.ndarray, **changes) -> MovieLens:
    return replace(ml, r_user=ml.r_user[keep], r_item=ml.r_item[keep],
                   r_rating=ml.r_rating[keep], r_time=ml.r_time[keep], **changes)


# --- mapping to the raw tables -------------------------------------------------------------


def age_band(age: int) -> str:
    """The MovieLens 1M age band of an age (``under18``, ``18-24``, ..., ``56+``)."""
    for upper, band in AGE_BANDS:
        if age < upper:
            return band
    return AGE_BANDS[-1][1]


def zip_region(zip_code: str) -> str:
    """The first digit of a US zip code (its national area), ``other`` for non-US codes."""
    return zip_code[0] if zip_code[:5].isdigit() and len(zip_code) == 5 else "other"


def primary_genre(flags: Sequence[int]) -> str:
    """The first flagged genre in MovieLens order; ``unknown`` only when no other is flagged."""
    for k in range(1, len(GENRES)):
        if flags[k]:
            return GENRES[k]
    return GENRES[0]


def title_words(title: str) -> list[str]:
    """Lower-case words of a title, without its trailing ``(year)``."""
    return _WORD.findall(_TITLE_YEAR.sub("", title).lower())


def title_embedding(title: str, dim: int = TEXT_DIM) -> np.ndarray:
    """A signed hashed bag of the title's words (md5, so stable across runs), L2-normalised."""
    v = np.zeros(dim)
    for w in title_words(title):
        h = int.from_bytes(hashlib.md5(w.encode("utf-8")).digest()[:8], "little")
        v[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def item_year(title: str, release: dt.date | None) -> int | None:
    """A movie's year: its release date's, else the ``(1995)`` ending its title, else None."""
    if release is not None:
        return release.year
    m = _TITLE_YEAR.search(title)
    return int(m.group(1)) if m else None


_NULL = "\\N"


def release_age(release: dt.date | None, publish: int) -> int | None:
    """Days from the release date to the publish time (unix seconds; < 0 = never rated): how
    new a movie is when it appears, known at that moment.  Negative when it is rated before
    its release date (previews); None without a release date or publish time."""
    if release is None or publish < 0:
        return None
    return (dt.datetime.fromtimestamp(publish, dt.timezone.utc).date() - release).days


def release_age_days(release: dt.date | None, publish: int) -> str:
    """:func:`release_age` as COPY text (NULL when unknown)."""
    age = release_age(release, publish)
    return _NULL if age is None else str(age)


def _ts(seconds: np.ndarray) -> np.ndarray:
    out = np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s"), "+00")
    out = out.astype(object)
    out[seconds < 0] = _NULL
    return out


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _array_literal(values: Sequence[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def _vector(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in v) + "]"


def tables(ml: MovieLens) -> dict[str, dict[str, list]]:
    """The rows of the five raw tables, column by column, as COPY text values."""
    def opt(x) -> str:
        return _NULL if x is None else str(x)

    publish = ml.item_publish_time
    register = ml.user_first_time
    users = {
        "user_id": [str(u) for u in ml.user_ids],
        "age": [str(a) for a in ml.ages],
        "age_band": [age_band(int(a)) for a in ml.ages],
        "gender": list(ml.genders),
        "occupation": [_copy_text(o) for o in ml.occupations],
        "zip": [_copy_text(z) for z in ml.zips],
        "zip_region": [zip_region(z) for z in ml.zips],
        "zip3": [_copy_text(z[:3]) for z in ml.zips],
        "register_time": list(_ts(register)),
    }
    primary = [primary_genre(g) for g in ml.genres]
    years = [item_year(t, r) for t, r in zip(ml.titles, ml.release_dates)]
    items = {
        "item_id": [str(i) for i in ml.item_ids],
        "author_id": primary,
        "title": [_copy_text(t) for t in ml.titles],
        "year": [opt(y) for y in years],
        "decade": [_NULL if y is None else f"{y // 10 * 10}s" for y in years],
        "release_date": [opt(d) for d in ml.release_dates],
        "video_release_date": [opt(d) for d in ml.video_dates],
        "imdb_url": [_copy_text(u) if u else _NULL for u in ml.urls],
        "category": primary,
        "tags": [_copy_text(_array_literal([GENRES[k] for k in np.flatnonzero(g)]))
                 for g in ml.genres],
        "n_genres": [str(int(g.sum())) for g in ml.genres],
        "create_time": list(_ts(publish)),
        "release_age_days": [release_age_days(d, int(p)) for d, p in
                             zip(ml.release_dates, publish)],
    }
    authors = sorted(set(primary))
    item_text = {
        "item_id": items["item_id"],
        "title_embedding": [_vector(title_embedding(t)) for t in ml.titles],
        "genre_vector": ["[" + ",".join(str(int(x)) for x in g) + "]" for g in ml.genres],
    }
    order = np.lexsort((ml.r_item, ml.r_user, ml.r_time))
    click = ml.r_rating[order] >= CLICK_MIN_RATING
    u = ml.r_user[order].astype(str)
    i = ml.r_item[order].astype(str)
    t = _ts(ml.r_time[order])
    r = ml.r_rating[order].astype(str)
    # impression, then (same time) click: interleaved so the table stays ordered by time
    n = len(order) + int(click.sum())
    pos_imp = np.arange(len(order)) + np.concatenate([[0], np.cumsum(click)[:-1]])
    events = {k: np.empty(n, dtype=object) for k in
              ("user_id", "item_id", "event_type", "event_time", "rating")}
    for col, val in (("user_id", u), ("item_id", i), ("event_time", t), ("rating", r)):
        events[col][pos_imp] = val
        events[col][pos_imp[click] + 1] = val[click]
    events["event_type"][pos_imp] = "impression"
    events["event_type"][pos_imp[click] + 1] = "click"
    return {
        "ml_users": users,
        "ml_authors": {"author_id": authors, "genre": authors},
        "ml_items": items,
        "ml_item_text": item_text,
        "ml_events": {k: list(v) for k, v in events.items()},
    }


_DDL = {
    "ml_users": """user_id text primary key, age int, age_band text, gender text,
        occupation text, zip text, zip_region text, zip3 text, register_time timestamptz""",
    "ml_authors": "author_id text primary key, genre text",
    "ml_items": """item_id text primary key, author_id text, title text, year int, decade text,
        release_date date, video_release_date date, imdb_url text, category text, tags text[],
        n_genres int, create_time timestamptz, release_age_days int""",
    "ml_item_text": f"""item_id text primary key, title_embedding vector({TEXT_DIM}),
        genre_vector vector({len(GENRES)})""",
    "ml_events": "user_id text, item_id text, event_type text, event_time timestamptz, rating smallint",
}


def _copy(cur, table: str, columns: dict[str, list]) -> int:
    n = len(next(iter(columns.values())))
    buf = io.StringIO()
    if n:
        buf.write("\n".join(map("\t".join, zip(*columns.values()))))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin with (format text)", buf)
    return n


def load(url: str, path: str | Path | MovieLens, schema: str | None = None) -> dict[str, Any]:
    """Replace the five ``ml_*`` tables with the MovieLens 100K folder ``path`` (or a dataset
    already parsed, e.g. :func:`ratings_before`); return a summary.

    The files are parsed and validated first; then everything (drop, create, COPY, indexes)
    happens in one transaction, so any error leaves the previous tables as they were.
    """
    began = time.perf_counter()
    if schema is not None and not _IDENT.match(schema):
        raise DatasetError(f"schema {schema!r} is not a plain SQL identifier (letters, digits, _)")
    ml = path if isinstance(path, MovieLens) else read(path)
    data = tables(ml)

    from dropoutnet.core import db

    counts = db.replace_tables(
        url, schema, {t: _DDL[t] for t in TABLES},
        lambda cur, name, table: _copy(cur, name, data[table]),
        # a user's events by time: the per-user reads (the active users, their features,
        # a recall's own items) are index-only scans of it (docs/pipeline.md)
        indexes=[("ml_events", "event_time"), ("ml_events", "item_id"),
                 ("ml_events", "user_id", "event_time")])
    day = lambda s: dt.datetime.fromtimestamp(int(s), dt.timezone.utc).date().isoformat()  # noqa: E731
    return {
        "dataset": NAME,
        "path": str(ml.path),
        "schema": schema,
        "rows": counts,
        "ratings": int(len(ml.r_time)),
        "clicks": int((ml.r_rating >= CLICK_MIN_RATING).sum()),
        "first_day": day(ml.r_time.min()),
        "last_day": day(ml.r_time.max()),
        "seconds": round(time.perf_counter() - began, 2),
    }
