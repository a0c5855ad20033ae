#!/usr/bin/env bash
# First start of the compose file's PostgreSQL (the official image runs this once, on an empty
# data volume): Airflow's metadata database and the pipeline's database, each owned by its own
# role, neither a superuser. The pipeline's role may open a logical replication slot (the
# stream worker) and owns what it creates (raw tables it loads, the schema `dropoutnet`);
# pgvector is not a trusted extension, so the superuser creates it here.
# Passwords come from the environment (.env), are passed to psql as variables and quoted by it.
set -euo pipefail
: "${AIRFLOW_DB_USER:?}" "${AIRFLOW_DB_PASSWORD:?}" "${AIRFLOW_DB_NAME:?}"
: "${DROPOUTNET_DB_USER:?}" "${DROPOUTNET_DB_PASSWORD:?}" "${DROPOUTNET_DB_NAME:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v airflow_user="$AIRFLOW_DB_USER" -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v airflow_db="$AIRFLOW_DB_NAME" \
    -v app_user="$DROPOUTNET_DB_USER" -v app_password="$DROPOUTNET_DB_PASSWORD" \
    -v app_db="$DROPOUTNET_DB_NAME" <<'SQL'
create role :"airflow_user" login password :'airflow_password';
create database :"airflow_db" owner :"airflow_user";
create role :"app_user" login replication nosuperuser nocreaterole nocreatedb
    password :'app_password';
create database :"app_db" owner :"app_user";
\connect :"app_db"
create extension if not exists vector;
SQL
