# podbackup: API and worker in one image (run `podbackup api` or `podbackup worker`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PODBACKUP_CACHE_DIR=/var/lib/podbackup/cache \
    PODBACKUP_DATA_DIR=/var/lib/podbackup

# restic and the database clients the worker runs; curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      restic postgresql-client mariadb-client openssh-client ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/podbackup --uid 10001 podbackup \
 && mkdir -p /var/lib/podbackup/cache \
 && chown -R podbackup:podbackup /var/lib/podbackup

WORKDIR /srv/podbackup
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install aioboto3 && pip install .

USER podbackup
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["podbackup", "api", "--host", "0.0.0.0", "--port", "8000"]
