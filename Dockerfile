# One image for every fate-airflow process: Airflow components, Celery workers, the party gateway.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /opt/fate-airflow
COPY pyproject.toml constraints.txt README.md ./
COPY fate_airflow fate_airflow
COPY dags dags
COPY plugins plugins
COPY examples examples
# The same lock as development; `production` adds the Celery provider, psycopg2 and redis.
RUN pip install --no-cache-dir -c constraints.txt '.[production]'
# The compose parties' configs (deploy/compose/*.yaml); after the install so edits keep its cache.
COPY deploy deploy
