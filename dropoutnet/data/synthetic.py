"""Synthetic short-video data with a planted, recoverable preference structure.

``generate`` writes the raw tables the demo pipeline reads (``config/pipeline.yaml``) plus two
oracle tables holding the latent factors the clicks were drawn from, so that a trained model can
be compared with the best achievable ranking.

Tables (all dropped and recreated in one transaction, loaded with ``COPY``):

* ``sv_users(user_id, gender, age_band, city, level, register_time)``
* ``sv_authors(author_id, gender, level, is_member, city, author_type, fans_count,
  visitor_count, play_count, like_count)``
* ``sv_items(item_id, author_id, primary_type, title, duration, source_type, width, height,
  grade_score, topic, category_level1, category_level2, tags text[], create_time)``
* ``sv_item_text_embedding(item_id, title_embedding vector(16), tag_embedding vector(16))``
* ``sv_events(user_id, item_id, event_type, event_time, request_id)``, event types
  ``impression``, ``click``, ``like``, ``share`` (``request_id`` is null here: the traffic
  simulator's events carry the recall response they answer)
* ``sv_oracle_users(user_id, taste vector(ORACLE_DIM))``
* ``sv_oracle_items(item_id, latent vector(ORACLE_DIM), quality)``

The generative story
--------------------
A ``ORACLE_DIM``-dimensional latent space holds a vector for every level-1 category (8),
level-2 category (40, five under each level-1), tag (150, each under one level-2) and author
(a style near the author's main level-1 category).  An item's ``latent`` is a fixed mix of its
level-1, level-2, tags' and author's vectors plus a little noise, scaled to unit length; its
``quality`` is a linear function of ``grade_score``.  A user's ``taste`` weights a few favourite
level-1 categories (drawn from an age-band- and gender-dependent prior: demographics carry a
weak signal), one favourite level-2 category, and some individual noise.

**Oracle score** (the exact formula the clicks are drawn from)::

    oracle_logit(u, i) = taste[u] . latent[i] + quality[i]
    P(click | impression) = sigmoid(CLICK_BIAS + oracle_logit(u, i))

:func:`oracle_scores` computes ``oracle_logit`` in numpy; ``CLICK_BIAS`` is a constant, so it
does not change any ranking.  A click may be followed by a like (``sigmoid(LIKE_BIAS +
0.5 * oracle_logit)``) and/or a share (``sigmoid(SHARE_BIAS + 0.5 * oracle_logit)``).

Exposure is not personalised: each day a random ~60 % of the registered users is active and
sees 10-24 impressions, ~30 % of them on the items published that day (every new item gets
impressions on its publish day) and the rest on older items drawn by recent clicks and
freshness (weight ``sqrt(1 + clicks of the last 7 days) * exp(-age / freshness_days)``).
Title and tag embeddings are noisy random projections of the item latent and of its tags'
latents.  Users register over a year before the window and during it (cold users).

Sizes and shape (``generate``'s arguments; ``dropoutnet datagen --help``)
------------------------------------------------------------------------
``n_users`` users (``--users``), of whom ``cold_user_share`` (``--cold-user-share``, default
0.2) register during the window; ``n_items`` items before the window (``--items``) and
``new_items_per_day`` on each of its ``days`` days; ``n_authors`` authors.

* ``registration_growth`` (``--registration-growth``, default 1): the cold users' registrations
  on window day ``d`` are proportional to ``registration_growth ** d`` and are exact counts
  (:func:`registrations_per_day`).  1 spreads them evenly; 2 is a sign-up campaign that doubles
  every day, so about half of them register on the last day.  A bizdate's cold users are the
  users who register on it, and users of earlier days cost training rows on every later day:
  a campaign gives the last bizdate many cold users at little training cost.
* ``freshness_days`` (``--freshness-days``, default 20): how fast the exposure of older items
  fades with age.  The pipeline serves the items of the last few days
  (``retrieval.candidate_window_days``, 3 in the demo: the bizdate's and the two days' before);
  with the default about 1 in 6 impressions of older items falls on the two previous days'
  items, with 2 about half, as in a short-video feed.

Neither changes the planted preferences or the click model: who sees what, not who clicks what.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import re
import time
from typing import Any

import numpy as np

from dropoutnet.core.dates import parse_bizdate, today_utc

log = logging.getLogger(__name__)

ORACLE_DIM = 16
TEXT_DIM = 16
CLICK_BIAS = -3.6
LIKE_BIAS = -1.6
SHARE_BIAS = -3.0
QUALITY_WEIGHT = 0.4          # quality = QUALITY_WEIGHT * (grade_score - 6) / 1.3
TASTE_SCALE = 3.6             # length scale of a user's taste vector
NEW_ITEM_SHARE = 0.30         # share of a day's impressions on that day's new items
IMPRESSIONS_PER_DAY = (10, 24)  # inclusive range per active user
ACTIVE_SHARE = 0.60
CATALOGUE_DAYS = 60           # the initial catalogue is created over this many days before
REGISTER_DAYS = 365           # users registered before the window: over this many days before

TABLES = ("sv_users", "sv_authors", "sv_items", "sv_item_text_embedding", "sv_events",
          "sv_oracle_users", "sv_oracle_items")

DEFAULTS = dict(n_users=2000, n_items=3000, n_authors=300, days=21, new_items_per_day=150,
                cold_user_share=0.2, registration_growth=1.0, freshness_days=20.0, seed=42)

_CATEGORIES: dict[str, list[str]] = {
    "food": ["recipes", "street_food", "baking", "restaurants", "drinks"],
    "travel": ["city_walks", "hiking", "road_trips", "beaches", "hotels"],
    "gaming": ["esports", "mobile_games", "retro_games", "walkthroughs", "game_news"],
    "music": ["covers", "live_music", "instruments", "dance", "music_news"],
    "sports": ["football", "basketball", "fitness", "running", "extreme_sports"],
    "beauty": ["makeup", "skincare", "hairstyles", "fashion", "nails"],
    "tech": ["gadgets", "programming", "phones", "ai", "diy_electronics"],
    "pets": ["dogs", "cats", "birds", "aquariums", "pet_care"],
}
_TAG_WORDS = ["tips", "daily", "pro", "fun", "review", "vlog", "tutorial", "challenge", "best",
              "beginner", "live", "hacks", "story", "top10", "asmr", "trend", "classic", "weekly",
              "guide"]
N_TAGS = 150
_AGE_BANDS = ["<18", "18-24", "25-34", "35-44", "45+"]
_GENDERS = ["female", "male", "unknown"]
_CITIES = ["beijing", "shanghai", "guangzhou", "shenzhen", "chengdu", "hangzhou", "wuhan",
           "xian", "nanjing", "tianjin", "chongqing", "suzhou", "changsha", "qingdao",
           "zhengzhou", "kunming", "dalian", "xiamen", "harbin", "other"]
_AUTHOR_TYPES = ["individual", "mcn", "brand", "media"]
_PRIMARY_TYPES = ["short_video", "long_video", "live_replay", "image_text"]
_SOURCE_TYPES = ["ugc", "pgc", "repost"]
_RESOLUTIONS = np.array([[720, 1280], [1080, 1920], [1280, 720], [1920, 1080], [1080, 1080]])
_TOPIC_WORDS = ["trending", "classic", "weekend", "newbie", "expert", "funny"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- public helpers --------------------------------------------------------------------------


def oracle_scores(user_taste: np.ndarray, item_latent: np.ndarray,
                  quality: np.ndarray | float) -> np.ndarray:
    """The oracle logit ``taste . latent + quality`` (``CLICK_BIAS`` left out).

    Row-wise when ``user_taste`` and ``item_latent`` have the same shape ``(n, D)`` (one score
    per pair); a ``(n_users, n_items)`` matrix when given ``(n_users, D)`` and ``(n_items, D)``
    of different lengths, or a single user ``(D,)`` against items ``(n_items, D)``.
    """
    taste = np.asarray(user_taste, dtype=np.float64)
    latent = np.asarray(item_latent, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    if taste.ndim == 2 and latent.ndim == 2 and taste.shape == latent.shape:
        return np.einsum("nd,nd->n", taste, latent) + quality
    return taste @ latent.T + quality


def click_probability(oracle_logit: np.ndarray) -> np.ndarray:
    """P(click | impression) for an oracle logit: ``sigmoid(CLICK_BIAS + logit)``."""
    return _sigmoid(CLICK_BIAS + np.asarray(oracle_logit, dtype=np.float64))


def like_probability(oracle_logit: np.ndarray) -> np.ndarray:
    """P(like | click) for an oracle logit: ``sigmoid(LIKE_BIAS + 0.5 * logit)``."""
    return _sigmoid(LIKE_BIAS + 0.5 * np.asarray(oracle_logit, dtype=np.float64))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (:func:`dropoutnet.evaluation.metrics.auc`); NaN when one class is absent."""
    from dropoutnet.evaluation.metrics import auc as rank_auc

    value = rank_auc(scores, labels)
    return float("nan") if value is None else value


def registrations_per_day(n_users: int, days: int, cold_user_share: float,
                          registration_growth: float) -> np.ndarray:
    """How many users register on each day of the window (``days`` counts, oldest first).

    ``round(cold_user_share * n_users)`` users register during the window; day ``d`` gets a
    share proportional to ``registration_growth ** d`` (1 = evenly; above 1 a sign-up
    campaign that grows by that factor a day), rounded so that the counts add up exactly
    (largest remainders).
    """
    n_cold = int(round(cold_user_share * n_users))
    log_w = np.arange(days) * np.log(registration_growth)
    w = np.exp(log_w - log_w.max())
    exact = n_cold * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = n_cold - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    return counts


# --- validation ------------------------------------------------------------------------------

_LIMITS = {  # argument -> (CLI option, type, minimum, maximum)
    "n_users": ("--users", int, 1, 10_000_000),
    "n_items": ("--items", int, 1, 10_000_000),
    "n_authors": ("--authors", int, 1, 1_000_000),
    "days": ("--days", int, 1, 366),
    "new_items_per_day": ("--new-items-per-day", int, 0, 1_000_000),
    "cold_user_share": ("--cold-user-share", float, 0.0, 1.0),
    "registration_growth": ("--registration-growth", float, 0.1, 10.0),
    "freshness_days": ("--freshness-days", float, 0.1, 1000.0),
}


def _check_sizes(values: dict[str, Any], *, cli: bool = False) -> None:
    for name, value in values.items():
        option, kind, low, high = _LIMITS[name]
        label = option if cli else name
        if kind is int and (isinstance(value, bool)
                            or not isinstance(value, (int, np.integer))):
            raise ValueError(f"{label} must be an integer, got {value!r}")
        if kind is float and (isinstance(value, bool)
                              or not isinstance(value, (int, float, np.integer, np.floating))):
            raise ValueError(f"{label} must be a number, got {value!r}")
        if not low <= value <= high:  # also rejects NaN
            raise ValueError(f"{label} must be between {low} and {high}, got {value}")


def parse_end_date(value: str | dt.date | None, today: dt.date | None = None) -> dt.date:
    """The last day of the generated window: a real calendar date ``YYYY-MM-DD`` not after
    today (UTC); ``None`` means yesterday."""
    today = today or today_utc()
    if value is None:
        return today - dt.timedelta(days=1)
    return parse_bizdate(value, today, what="end date")


# --- generation ------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _unit(rng: np.random.Generator, n: int, d: int = ORACLE_DIM) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


class _World:
    """Everything drawn from the random seed, in memory (numpy arrays; index = row)."""

    def __init__(self, *, n_users: int, n_items: int, n_authors: int, days: int,
                 end_date: dt.date, new_items_per_day: int, cold_user_share: float,
                 registration_growth: float, freshness_days: float, seed: int) -> None:
        self.rng = rng = np.random.default_rng(seed)
        self.days = days
        self.freshness_days = freshness_days
        self.start_date = end_date - dt.timedelta(days=days - 1)
        self.end_date = end_date
        start = np.datetime64(self.start_date.isoformat(), "s")
        self.t0 = start  # seconds are counted from the window start
        day_s = 86400

        # -- taxonomy and its latents --
        self.cat1_names = np.array(list(_CATEGORIES), dtype=object)
        n1 = len(self.cat1_names)
        self.cat2_names = np.array([c2 for c1 in _CATEGORIES for c2 in _CATEGORIES[c1]],
                                   dtype=object)
        self.cat2_parent = np.repeat(np.arange(n1), [len(v) for v in _CATEGORIES.values()])
        n2 = len(self.cat2_names)
        self.tag_cat2 = np.arange(N_TAGS) % n2
        self.tag_names = np.array([f"{self.cat2_names[c]}_{_TAG_WORDS[k // n2]}"
                                   for k, c in enumerate(self.tag_cat2)], dtype=object)
        cat1_lat = _unit(rng, n1)
        cat2_lat = _normalise(0.75 * cat1_lat[self.cat2_parent] + 0.65 * _unit(rng, n2))
        tag_lat = _normalise(0.35 * cat1_lat[self.cat2_parent[self.tag_cat2]]
                             + 0.45 * cat2_lat[self.tag_cat2] + 0.8 * _unit(rng, N_TAGS))
        self.tag_lat = tag_lat

        # -- authors --
        a = n_authors
        self.author_main = rng.integers(0, n1, a)
        author_style = _normalise(0.7 * cat1_lat[self.author_main] + 0.7 * _unit(rng, a))
        self.author_quality = rng.standard_normal(a)
        self.author_ids = _ids("a", a, 5)
        popularity = rng.lognormal(0.0, 1.2, a) * np.exp(0.4 * self.author_quality)
        fans = np.round(popularity * 2000).astype(np.int64)
        self.authors = {
            "author_id": self.author_ids,
            "gender": np.array(_GENDERS, dtype=object)[rng.choice(3, a, p=[0.45, 0.45, 0.1])],
            "level": np.clip((np.log1p(popularity) * 2).astype(int) + rng.integers(0, 2, a), 1, 8),
            "is_member": rng.random(a) < 0.25,
            "city": np.array(_CITIES, dtype=object)[rng.integers(0, len(_CITIES), a)],
            "author_type": np.array(_AUTHOR_TYPES, dtype=object)[
                rng.choice(4, a, p=[0.6, 0.2, 0.1, 0.1])],
            "fans_count": fans,
            "visitor_count": np.round(fans * rng.uniform(3, 10, a)).astype(np.int64),
            "play_count": np.round(fans * rng.uniform(20, 60, a)).astype(np.int64),
            "like_count": np.round(fans * rng.uniform(1, 5, a)).astype(np.int64),
        }

        # -- items: initial catalogue + new items each day of the window --
        n_new = new_items_per_day * days
        m = n_items + n_new
        self.n_catalogue = n_items
        ct = np.empty(m, dtype=np.int64)  # create time, seconds since window start
        ct[:n_items] = -rng.integers(1, CATALOGUE_DAYS * day_s, n_items)
        ct[:n_items].sort()
        new_day = np.repeat(np.arange(days), new_items_per_day)
        ct[n_items:] = new_day * day_s + rng.integers(0, 20 * 3600, n_new)
        # keep create order inside each day
        for d in range(days):
            sl = slice(n_items + d * new_items_per_day, n_items + (d + 1) * new_items_per_day)
            ct[sl].sort()
        self.item_ct = ct
        self.item_day = np.concatenate([np.full(n_items, -1), new_day])
        author = rng.integers(0, a, m)
        cat1 = np.where(rng.random(m) < 0.75, self.author_main[author], rng.integers(0, n1, m))
        cat2 = cat1 * 5 + rng.integers(0, 5, m)  # five level-2 per level-1, in order
        tags_per_cat2 = [np.flatnonzero(self.tag_cat2 == c) for c in range(n2)]
        tags_per_cat1 = [np.flatnonzero(self.cat2_parent[self.tag_cat2] == c) for c in range(n1)]
        n_tags = rng.integers(2, 6, m)
        own = rng.random((m, 5)) < 0.7
        pick = rng.random((m, 5))
        tag_lists: list[list[int]] = []
        multi_hot = np.zeros((m, N_TAGS))
        for i in range(m):
            c2, c1 = cat2[i], cat1[i]
            chosen: list[int] = []
            for k in range(5):
                pool = tags_per_cat2[c2] if own[i, k] else tags_per_cat1[c1]
                t = int(pool[int(pick[i, k] * len(pool))])
                if t not in chosen:
                    chosen.append(t)
                if len(chosen) == n_tags[i]:
                    break
            tag_lists.append(chosen)
            multi_hot[i, chosen] = 1.0 / len(chosen)
        tag_mean = multi_hot @ tag_lat
        latent = (0.45 * cat1_lat[cat1] + 0.4 * cat2_lat[cat2] + 0.45 * _normalise(tag_mean)
                  + 0.35 * author_style[author] + 0.15 * _unit(rng, m))
        self.item_latent = _normalise(latent)
        grade = np.clip(6.0 + 0.7 * self.author_quality[author] + 1.1 * rng.standard_normal(m),
                        0.0, 10.0).round(2)
        self.item_quality = QUALITY_WEIGHT * (grade - 6.0) / 1.3
        self.item_ids = _ids("i", m, 7)
        res = _RESOLUTIONS[rng.integers(0, len(_RESOLUTIONS), m)]
        duration = np.clip(rng.lognormal(3.6, 0.8, m), 5, 3600).round(1)
        ptype = rng.choice(len(_PRIMARY_TYPES), m, p=[0.7, 0.1, 0.1, 0.1])
        duration = np.where(ptype == 1, duration * 8, duration).round(1)
        topic_word = rng.integers(0, len(_TOPIC_WORDS), m)
        topic = np.array([f"{self.cat2_names[c]}_{_TOPIC_WORDS[w]}"
                          for c, w in zip(cat2, topic_word)], dtype=object)
        titles = np.array([
            f"{_TOPIC_WORDS[w].capitalize()} {self.cat2_names[c].replace('_', ' ')}: "
            + ", ".join(self.tag_names[t].rsplit("_", 1)[1] for t in tl)
            for c, w, tl in zip(cat2, topic_word, tag_lists)], dtype=object)
        self.items = {
            "item_id": self.item_ids,
            "author_id": self.author_ids[author],
            "primary_type": np.array(_PRIMARY_TYPES, dtype=object)[ptype],
            "title": titles,
            "duration": duration,
            "source_type": np.array(_SOURCE_TYPES, dtype=object)[
                rng.choice(3, m, p=[0.7, 0.2, 0.1])],
            "width": res[:, 0],
            "height": res[:, 1],
            "grade_score": grade,
            "topic": topic,
            "category_level1": self.cat1_names[cat1],
            "category_level2": self.cat2_names[cat2],
            "tags": ["{" + ",".join(self.tag_names[t] for t in tl) + "}" for tl in tag_lists],
            "create_time": ct,
        }
        w_title = rng.standard_normal((ORACLE_DIM, TEXT_DIM)) / np.sqrt(ORACLE_DIM)
        w_tag = rng.standard_normal((ORACLE_DIM, TEXT_DIM)) / np.sqrt(ORACLE_DIM)
        self.title_emb = self.item_latent @ w_title + 0.15 * rng.standard_normal((m, TEXT_DIM))
        self.tag_emb = _normalise(tag_mean) @ w_tag + 0.12 * rng.standard_normal((m, TEXT_DIM))

        # -- users --
        u = n_users
        gender = rng.choice(3, u, p=[0.48, 0.47, 0.05])
        age = rng.choice(len(_AGE_BANDS), u, p=[0.1, 0.3, 0.3, 0.2, 0.1])
        age_prior = np.exp(0.9 * rng.standard_normal((len(_AGE_BANDS), n1)))
        gender_prior = np.exp(0.5 * rng.standard_normal((3, n1)))
        prior = age_prior[age] * gender_prior[gender]
        prior /= prior.sum(axis=1, keepdims=True)
        # a sparse preference over level-1 categories: a few favourites from the prior
        pref = rng.gamma(0.35 * n1 * prior)
        pref /= np.maximum(pref.sum(axis=1, keepdims=True), 1e-12)
        fav2 = np.array([rng.choice(n1, p=p) for p in prior]) * 5 + rng.integers(0, 5, u)
        taste = (0.9 * _normalise(pref @ cat1_lat) + 0.5 * cat2_lat[fav2]
                 + 0.35 * _unit(rng, u))
        self.user_taste = TASTE_SCALE * _normalise(taste)
        level = np.clip(rng.poisson(2.0, u) + 1, 1, 8)
        self.user_activity = np.clip(rng.beta(6, 4, u) + 0.02 * (level - 3), 0.05, 1.0)
        rt = -rng.integers(day_s, REGISTER_DAYS * day_s, u)
        per_day = registrations_per_day(u, days, cold_user_share, registration_growth)
        cold = rng.permutation(u)[:int(per_day.sum())]
        rt[cold] = (np.repeat(np.arange(days), per_day) * day_s
                    + rng.integers(0, day_s - 4 * 3600, len(cold)))
        self.user_rt = rt
        self.user_ids = _ids("u", u, 6)
        self.users = {
            "user_id": self.user_ids,
            "gender": np.array(_GENDERS, dtype=object)[gender],
            "age_band": np.array(_AGE_BANDS, dtype=object)[age],
            "city": np.array(_CITIES, dtype=object)[rng.integers(0, len(_CITIES), u)],
            "level": level,
            "register_time": rt,
        }

    def events(self) -> dict[str, np.ndarray]:
        """Simulate the window day by day; return event columns sorted by time."""
        rng, day_s = self.rng, 86400
        m = len(self.item_ids)
        clicks_by_day = np.zeros((self.days, m))
        prior = 2.0 * np.exp(2.0 * self.item_quality)
        out_u, out_i, out_t, out_e, imp_logit, imp_click = [], [], [], [], [], []
        for d in range(self.days):
            lo_day, hi_day = d * day_s, (d + 1) * day_s - 900
            eligible = self.user_rt < hi_day - 3600
            active = np.flatnonzero(eligible & (rng.random(len(eligible)) < self.user_activity))
            if len(active) == 0:
                continue
            n_imp = rng.integers(IMPRESSIONS_PER_DAY[0], IMPRESSIONS_PER_DAY[1] + 1, len(active))
            users = np.repeat(active, n_imp)
            total = len(users)
            new_items = np.flatnonzero(self.item_day == d)
            old_items = np.flatnonzero(self.item_ct < lo_day)
            is_new = rng.random(total) < (NEW_ITEM_SHARE if len(new_items) else 0.0)
            if len(old_items) == 0:
                is_new[:] = len(new_items) > 0
            short = len(new_items) - int(is_new.sum())
            if short > 0:  # every new item must get at least one impression today
                is_new[rng.choice(np.flatnonzero(~is_new), min(short, int((~is_new).sum())),
                                  replace=False)] = True
            items = np.empty(total, dtype=np.int64)
            k_new = int(is_new.sum())
            if k_new:
                items[is_new] = rng.permutation(np.resize(rng.permutation(new_items), k_new))
            if total - k_new:
                age_days = (lo_day - self.item_ct[old_items]) / day_s
                recent = clicks_by_day[max(0, d - 7):d, old_items].sum(axis=0)
                w = ((np.sqrt(1.0 + recent) + prior[old_items] * (d < 7))
                     * np.exp(-age_days / self.freshness_days))
                items[~is_new] = rng.choice(old_items, total - k_new, p=w / w.sum())
            # one impression per (user, item, day)
            _, keep = np.unique(users * m + items, return_index=True)
            keep.sort()
            users, items = users[keep], items[keep]
            n = len(users)
            lo = np.maximum(np.maximum(self.item_ct[items], self.user_rt[users]), lo_day)
            t_imp = lo + (rng.random(n) * (hi_day - lo)).astype(np.int64)
            logit = oracle_scores(self.user_taste[users], self.item_latent[items],
                                  self.item_quality[items])
            click = rng.random(n) < click_probability(logit)
            imp_logit.append(logit)
            imp_click.append(click)
            clicks_by_day[d] = np.bincount(items[click], minlength=m)
            t_click = t_imp[click] + rng.integers(3, 120, int(click.sum()))
            lg = logit[click]
            like = rng.random(len(lg)) < _sigmoid(LIKE_BIAS + 0.5 * lg)
            share = rng.random(len(lg)) < _sigmoid(SHARE_BIAS + 0.5 * lg)
            cu, ci = users[click], items[click]
            t_like = t_click[like] + rng.integers(5, 600, int(like.sum()))
            t_share = t_click[share] + rng.integers(5, 600, int(share.sum()))
            for uu, ii, tt, name in ((users, items, t_imp, 0), (cu, ci, t_click, 1),
                                     (cu[like], ci[like], t_like, 2),
                                     (cu[share], ci[share], t_share, 3)):
                out_u.append(uu)
                out_i.append(ii)
                out_t.append(tt)
                out_e.append(np.full(len(uu), name, dtype=np.int8))
        if out_u:
            u, i, t, e = (np.concatenate(x) for x in (out_u, out_i, out_t, out_e))
        else:
            u = i = t = np.zeros(0, dtype=np.int64)
            e = np.zeros(0, dtype=np.int8)
        order = np.lexsort((e, i, u, t))
        self.imp_logit = np.concatenate(imp_logit) if imp_logit else np.zeros(0)
        self.imp_click = np.concatenate(imp_click) if imp_click else np.zeros(0, dtype=bool)
        return {"user": u[order], "item": i[order], "time": t[order], "type": e[order]}


# --- writing ---------------------------------------------------------------------------------

EVENT_TYPES = np.array(["impression", "click", "like", "share"], dtype=object)

_DDL = {
    "sv_users": """user_id text primary key, gender text, age_band text, city text, level int,
        register_time timestamptz""",
    "sv_authors": """author_id text primary key, gender text, level int, is_member boolean,
        city text, author_type text, fans_count bigint, visitor_count bigint, play_count bigint,
        like_count bigint""",
    "sv_items": """item_id text primary key, author_id text, primary_type text, title text,
        duration double precision, source_type text, width int, height int,
        grade_score double precision, topic text, category_level1 text, category_level2 text,
        tags text[], create_time timestamptz""",
    "sv_item_text_embedding": f"""item_id text primary key, title_embedding vector({TEXT_DIM}),
        tag_embedding vector({TEXT_DIM})""",
    # request_id: the recall response an event answers (null for the generated history; the
    # traffic simulator, dropoutnet.online.simulate, fills it)
    "sv_events": "user_id text, item_id text, event_type text, event_time timestamptz, "
                 "request_id text",
    "sv_oracle_users": f"user_id text primary key, taste vector({ORACLE_DIM})",
    "sv_oracle_items": f"""item_id text primary key, latent vector({ORACLE_DIM}),
        quality double precision""",
}


def _timestamps(t0: np.datetime64, seconds: np.ndarray) -> np.ndarray:
    s = np.datetime_as_string(t0 + seconds.astype("timedelta64[s]"), unit="s")
    return np.char.add(s.astype(str), "+00").astype(object)


def _vectors(v: np.ndarray) -> np.ndarray:
    return np.array(["[" + ",".join(f"{x:.5f}" for x in row) + "]" for row in v], dtype=object)


def _text(col: np.ndarray) -> np.ndarray:
    col = np.asarray(col)
    if col.dtype == bool:
        return np.where(col, "t", "f").astype(object)
    return col.astype(str).astype(object) if col.dtype != object else col


def _copy(cur, table: str, columns: dict[str, np.ndarray]) -> int:
    cols = [_text(c) for c in columns.values()]
    n = len(cols[0])
    buf = io.StringIO()
    if n:
        buf.write("\n".join(map("\t".join, zip(*cols))))
        buf.write("\n")
    buf.seek(0)
    names = ", ".join(columns)
    cur.copy_expert(f"copy {table} ({names}) from stdin with (format text)", buf)
    return n


def generate(url: str, *, n_users: int, n_items: int, n_authors: int, days: int,
             end_date: dt.date, new_items_per_day: int, seed: int,
             cold_user_share: float = DEFAULTS["cold_user_share"],
             registration_growth: float = DEFAULTS["registration_growth"],
             freshness_days: float = DEFAULTS["freshness_days"],
             schema: str | None = None) -> dict[str, Any]:
    """Write the synthetic tables (replacing them) in one transaction; return a summary.

    ``schema`` puts the tables in that schema (created if missing); by default they go to the
    first schema of the connection's ``search_path``.  Events cover ``days`` days ending at
    ``end_date`` inclusive (UTC).  The summary holds the row count of every table, the date
    range, the impression CTR, the share of impressions on same-day new items, the oracle AUC
    of the impressions and the elapsed seconds.
    """
    began = time.perf_counter()
    shape = dict(cold_user_share=cold_user_share, registration_growth=registration_growth,
                 freshness_days=freshness_days)
    _check_sizes(dict(n_users=n_users, n_items=n_items, n_authors=n_authors, days=days,
                      new_items_per_day=new_items_per_day, **shape))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    end_date = parse_end_date(end_date)
    if schema is not None and not _IDENT.match(schema):
        raise ValueError(f"schema {schema!r} is not a plain SQL identifier (letters, digits, _)")

    log.info("drawing %d users, %d items and %d days of events", n_users, n_items, days)
    world = _World(n_users=n_users, n_items=n_items, n_authors=n_authors, days=days,
                   end_date=end_date, new_items_per_day=new_items_per_day, seed=seed, **shape)
    ev = world.events()
    t0 = world.t0
    data: dict[str, dict[str, np.ndarray]] = {
        "sv_users": {**world.users,
                     "register_time": _timestamps(t0, world.users["register_time"])},
        "sv_authors": world.authors,
        "sv_items": {**world.items, "tags": np.array(world.items["tags"], dtype=object),
                     "create_time": _timestamps(t0, world.items["create_time"])},
        "sv_item_text_embedding": {"item_id": world.item_ids,
                                   "title_embedding": _vectors(world.title_emb),
                                   "tag_embedding": _vectors(world.tag_emb)},
        "sv_events": {"user_id": world.user_ids[ev["user"]],
                      "item_id": world.item_ids[ev["item"]],
                      "event_type": EVENT_TYPES[ev["type"]],
                      "event_time": _timestamps(t0, ev["time"])},
        "sv_oracle_users": {"user_id": world.user_ids, "taste": _vectors(world.user_taste)},
        "sv_oracle_items": {"item_id": world.item_ids, "latent": _vectors(world.item_latent),
                            "quality": np.char.mod("%.6f", world.item_quality).astype(object)},
    }

    from dropoutnet.core import db

    log.info("writing %d events and the other tables (%.0f s so far)", len(ev["type"]),
             time.perf_counter() - began)
    counts = db.replace_tables(
        url, schema, {t: _DDL[t] for t in TABLES},
        lambda cur, name, table: _copy(cur, name, data[table]),
        # a user's events by time: the per-user reads (the active users, their features,
        # a recall's own items) are index-only scans of it (docs/pipeline.md)
        indexes=[("sv_events", "event_time"), ("sv_events", "item_id"),
                 ("sv_events", "user_id", "event_time")])

    n_imp = int(len(world.imp_click))
    imp = ev["type"] == 0
    new_imp = int((world.item_day[ev["item"][imp]] == ev["time"][imp] // 86400).sum())
    return {
        "schema": schema,
        "start_date": world.start_date.isoformat(),
        "end_date": world.end_date.isoformat(),
        "days": days,
        "seed": seed,
        "rows": counts,
        "events": {name: int((ev["type"] == k).sum()) for k, name in enumerate(EVENT_TYPES)},
        "ctr": round(float(world.imp_click.mean()), 4) if n_imp else None,
        "new_item_impression_share": round(new_imp / n_imp, 4) if n_imp else None,
        "oracle_auc": round(auc(world.imp_logit, world.imp_click), 4) if n_imp else None,
        "seconds": round(time.perf_counter() - began, 2),
    }


# --- CLI hook --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``dropoutnet datagen``."""
    parser.add_argument("--users", type=int, default=DEFAULTS["n_users"],
                        help="number of users, the cold users included (default: %(default)s)")
    parser.add_argument("--items", type=int, default=DEFAULTS["n_items"],
                        help="items in the initial catalogue, created before the window "
                             "(default: %(default)s)")
    parser.add_argument("--authors", type=int, default=DEFAULTS["n_authors"],
                        help="number of authors (default: %(default)s)")
    parser.add_argument("--days", type=int, default=DEFAULTS["days"],
                        help="days of events, ending at --end-date (default: %(default)s)")
    parser.add_argument("--new-items-per-day", type=int, default=DEFAULTS["new_items_per_day"],
                        help="items published on each day of the window (default: %(default)s)")
    parser.add_argument("--cold-user-share", type=float, default=DEFAULTS["cold_user_share"],
                        metavar="SHARE",
                        help="share of the users who register during the window (cold users; "
                             "the others registered within a year before it) "
                             "(default: %(default)s)")
    parser.add_argument("--registration-growth", type=float,
                        default=DEFAULTS["registration_growth"], metavar="FACTOR",
                        help="the window's registrations grow by this factor a day: 1 spreads "
                             "them evenly, 2 is a sign-up campaign that doubles daily and puts "
                             "half of them on the last day (default: %(default)s)")
    parser.add_argument("--freshness-days", type=float, default=DEFAULTS["freshness_days"],
                        metavar="DAYS",
                        help="exposure of items older than the day decays as exp(-age / DAYS): "
                             "smaller values put more of the feed on the last days' items "
                             "(default: %(default)s)")
    parser.add_argument("--end-date", default=None, metavar="YYYY-MM-DD",
                        help="last day of the window, inclusive (default: yesterday UTC)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="random seed; the same seed gives the same data "
                             "(default: %(default)s)")


def run_from_args(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Validate the parsed options, generate, and return the summary."""
    sizes = dict(n_users=args.users, n_items=args.items, n_authors=args.authors,
                 days=args.days, new_items_per_day=args.new_items_per_day,
                 cold_user_share=args.cold_user_share,
                 registration_growth=args.registration_growth,
                 freshness_days=args.freshness_days)
    _check_sizes(sizes, cli=True)
    try:
        end_date = parse_end_date(args.end_date)
    except ValueError as exc:
        raise ValueError(f"--end-date: {exc}") from None
    return generate(url, end_date=end_date, seed=args.seed, **sizes)
