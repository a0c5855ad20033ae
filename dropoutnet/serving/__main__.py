"""Run one model server in the foreground: ``python -m dropoutnet.serving CONFIG.json``."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def serve(config_path: str, host: str | None = None, port: int | None = None) -> None:
    """Run the model server of a service config until stopped, ``host``/``port`` overriding
    the config's; with ``metadata.instance`` > 1, that many uvicorn workers, each re-reading
    the config file (so no override then)."""
    import uvicorn

    from dropoutnet.serving.app import create_app
    from dropoutnet.serving.config import load_service_config

    config = load_service_config(config_path)
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    config = config.model_copy(update=updates)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    common = dict(host=config.host, port=config.port, access_log=False, log_level="info",
                  timeout_graceful_shutdown=10)
    if config.metadata.instance == 1:
        uvicorn.run(create_app(config), **common)
        return
    if updates:  # workers re-read the config from its file
        raise SystemExit("--host/--port cannot override the config with metadata.instance > 1")
    os.environ["DROPOUTNET_SERVICE_CONFIG"] = os.path.abspath(config_path)
    uvicorn.run("dropoutnet.serving.app:app_from_env", factory=True,
                workers=config.metadata.instance, **common)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m dropoutnet.serving``; exit status 1 on a config error."""
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.serving",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the service's JSON config")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    from dropoutnet.config import ConfigError

    try:
        serve(args.config, args.host, args.port)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
