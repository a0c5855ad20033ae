"""The laptop launcher: the embedded PostgreSQL, the local stack (Airflow's components and the
services as processes) and ``make demo``.  Only entry points import it: it decides which
database a command uses when ``DROPOUTNET_DATABASE_URL`` is unset."""
