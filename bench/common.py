"""What every benchmark script shares: the repository on the import path, a temporary project
home with its own embedded Postgres, the result written as JSON, and the synthetic world of
the quality benchmark (which ``synthetic_ceiling.py`` analyses too).

Each script runs as ``python bench/NAME.py``, so this folder is on its import path.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dropoutnet.core.processes import free_port  # noqa: E402, F401  (re-exported for the scripts)

# The synthetic data.  With the demo's sizes the reported bizdate's warm-item and cold-user
# splits held 5 to 25 users with a click among their candidates (the older items of the
# 3-day candidate pool): only ~20 users register on a given day, 10 % of the returning users
# are held out, and a user's older-item impressions spread over ~6,000 items with a 20-day
# freshness, so fewer than 2 of them fall on the pool.  Here the feed favours the last days'
# items (freshness 2 days: ~6 pool impressions per user), a sign-up campaign doubling daily
# puts ~900 registrations on the last day (the earlier, smaller days cost little training),
# half of the returning users are held out, and 3,600 users keep the training set as large as
# the demo's (~260k samples).  Measured: ~900 / ~390 / ~370 users with a click (cold items /
# warm items / cold users).  The planted preferences and the click model are the demo's, but
# the users are younger: a third of the cold-item split's users registered that day (2 % with
# the demo's sizes), so its figures are lower than, and not comparable with, earlier runs'.
SYNTHETIC = dict(n_users=3600, n_items=3000, n_authors=300, new_items_per_day=150, days=21,
                 cold_user_share=0.5, registration_growth=2.0, freshness_days=2.0)


def new_home(prefix: str) -> Path:
    """A fresh ``DROPOUTNET_HOME`` for one run, set in this process's environment with the
    user's ``DROPOUTNET_DATABASE_URL`` unset: the run uses its own embedded Postgres and never
    touches the user's pipeline data.  :func:`remove_home` ends it."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DROPOUTNET_HOME"] = str(home)
    os.environ.pop("DROPOUTNET_DATABASE_URL", None)
    return home


def remove_home(home: Path) -> None:
    """Stop the home's embedded Postgres and remove the folder (a run's ``finally``)."""
    from dropoutnet.local import embedded_pg

    embedded_pg.stop(home)
    shutil.rmtree(home, ignore_errors=True)


def write_result(result: dict, out: Path, name: str) -> None:
    """Print the result's JSON and write it to ``out/name``."""
    text = json.dumps(result, indent=1, default=str)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text + "\n")

