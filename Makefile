# DropoutNet cold-start recall: the developer commands.
#
#   make demo      data + Airflow + two daily runs + results (leaves Airflow running)
#   make airflow   start Postgres and Airflow (api-server, scheduler, dag-processor, triggerer;
#                  with AIRFLOW__CORE__EXECUTOR=CeleryExecutor also Redis and Celery workers)
#   make stop      stop everything `make demo` / `make airflow` started
#   make status    what is running
#   make prod-check  docker-compose.yml's services as local processes (the compose file's
#                  commands and environments, two Celery workers), a daily run through them,
#                  every health check up and stopped; then all stopped (needs root, as Docker)
#   make test      the test suite, its files spread over the cores (TEST_WORKERS, default auto);
#                  installs Debian's chromium, chromium-driver and redis-server if missing
#   make clean     stop, then remove the project home ($(DROPOUTNET_HOME))
#
# Settings: DROPOUTNET_HOME (default ./.dropoutnet), DROPOUTNET_AIRFLOW_PORT (default 8080),
# PYTHON (the interpreter that creates .venv; Python 3.11), TEST_WORKERS (test processes, each
# with its own embedded Postgres: a number, or auto for one per core, at most 4).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DROPOUTNET_HOME ?= $(CURDIR)/.dropoutnet
HOME_ENV = DROPOUTNET_HOME="$(DROPOUTNET_HOME)"
TEST_WORKERS ?= auto
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv system demo airflow stop status prod-check test clean

venv: $(STAMP)

# Rebuilt only when requirements.txt (the pin lock) or pyproject.toml is newer than the stamp.
$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no python3.11 / python3 on PATH (set PYTHON=...)"; exit 1; }
	@test -x $(VPY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(VPY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { \
	    echo "error: $(VENV) uses $$($(VPY) -V); this project needs Python 3.11 (set PYTHON=python3.11, remove $(VENV))"; exit 1; }
	$(VPY) -m pip install -r requirements.txt
	$(VPY) -m pip install --no-deps -e .
	@touch $@

demo: venv
	$(HOME_ENV) $(VPY) -m dropoutnet.local.demo

airflow: venv
	$(HOME_ENV) $(VPY) -m dropoutnet.local.stack start

stop:
	@if [ -x $(VPY) ]; then $(HOME_ENV) $(VPY) -m dropoutnet.local.stack stop; else echo "nothing to stop (no $(VENV))"; fi

status:
	@if [ -x $(VPY) ]; then $(HOME_ENV) $(VPY) -m dropoutnet.local.stack status; else echo "no $(VENV): run make venv"; fi

# What the suite needs from Debian, installed when missing (as root, or through sudo), since CI
# runs on a fresh machine: headless Chromium for the console's browser test, and the Redis
# server the local stack's Celery mode starts as its broker.
system:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing (apt-get) for the test suite"; \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        $$missing >/dev/null; fi

prod-check: venv system
	$(HOME_ENV) $(VPY) -m dropoutnet.local.topology.check

test: venv system
	$(VPY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

clean:
	@case "$(abspath $(DROPOUTNET_HOME))" in ""|"/"|"$(abspath $(HOME))"|"$(CURDIR)") \
	    echo "refusing to remove DROPOUTNET_HOME=$(DROPOUTNET_HOME)"; exit 1;; esac
	@$(MAKE) --no-print-directory stop
	rm -rf "$(DROPOUTNET_HOME)"
