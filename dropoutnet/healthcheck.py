"""A container's health check: ``python -m dropoutnet.healthcheck URL [--alive-on 503]``.

GETs ``URL`` (a service inside the same container) and exits 0 if it answers 2xx, or one of the
``--alive-on`` statuses: the model service and the recall API answer ``/healthz`` with 503
while they run but have no model version yet (before the first daily run), which is alive,
not broken.  No answer, or any other status, exits 1 with one line saying what happened.
Standard library only: the check runs every few seconds and must cost next to nothing (the
image has no curl).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def check(url: str, alive_on: tuple[int, ...] = (), timeout: float = 5.0) -> tuple[bool, str]:
    """Whether ``url`` answers 2xx (or a status of ``alive_on``), with the line to print."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as err:
        code = err.code
    except (urllib.error.URLError, OSError, ValueError) as err:
        return False, f"unhealthy: {url} does not answer: {getattr(err, 'reason', err)}"
    ok = 200 <= code < 300 or code in alive_on
    return ok, f"{'healthy' if ok else 'unhealthy'}: {url} answered {code}"


def main(argv: list[str] | None = None) -> int:
    """The health check's command line; exit status 0 when healthy, else 1."""
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.healthcheck",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--alive-on", type=int, action="append", default=[], metavar="STATUS",
                        help="an HTTP status that also counts as healthy (repeatable)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    ok, message = check(args.url, tuple(args.alive_on), args.timeout)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
