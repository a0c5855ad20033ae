"""`python -m dropoutnet.local.stack airflow ...` runs airflow with the stack's environment."""

from __future__ import annotations

import os
import subprocess
import sys


def test_airflow_passthrough_uses_the_stack_environment(tmp_path):
    env = dict(os.environ, DROPOUTNET_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "dropoutnet.local.stack", "airflow", "config", "get-value",
         "core", "dags_folder"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("/dags")
    assert (tmp_path / "airflow").is_dir()
