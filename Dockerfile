# The cart_pipeline code location (also used by the webserver and daemon) for docker-compose.
FROM python:3.11.14-slim-bookworm
WORKDIR /opt/dagster/app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY cart_pipeline ./cart_pipeline
RUN pip install '.[docker]'
COPY deploy ./deploy
RUN mkdir -p /opt/dagster/home && cp deploy/dagster.yaml /opt/dagster/home/dagster.yaml
ENV DAGSTER_HOME=/opt/dagster/home
EXPOSE 4000
