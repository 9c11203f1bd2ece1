# The kaos server as an image (used by docker-compose.yml). The base image is a build argument
# so sites without a registry can use a locally made one (scripts/make-base-image.sh).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

WORKDIR /opt/kaos
COPY pyproject.toml README.md ./
COPY kaos ./kaos
RUN pip install --no-cache-dir '.[docker,postgres]'

ENV KAOS_HOME=/var/lib/kaos \
    KAOS_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 8585
CMD ["kaos", "server", "start", "--host", "0.0.0.0"]
