#!/usr/bin/env bash
# The compose file's Airflow api-server: write SimpleAuthManager's password file from the
# environment (AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD, from .env) so that the login is the
# one the operator chose rather than a generated one printed in the log, then start the server.
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?}" "${AIRFLOW_ADMIN_PASSWORD:?}" "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
umask 077
python - <<'PY'
import json
import os

with open(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"], "w") as out:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
PY
exec airflow api-server "$@"
