# podbackup: API and worker in one image (run `podbackup api` or `podbackup worker`).
#
# Debian 13 (trixie) for its clients: restic 0.18, PostgreSQL 17 (pg_dump 17 dumps pods on
# PostgreSQL up to 17) and MariaDB 11.8 (mariadb-dump, mariadb). The python.org build of
# Python 3.11, the version constraints.txt was resolved with and CI tests on.
FROM python:3.11-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PODBACKUP_CACHE_DIR=/var/lib/podbackup/cache \
    PODBACKUP_DATA_DIR=/var/lib/podbackup

# restic and the database clients the worker runs; curl for the API's health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      restic postgresql-client mariadb-client openssh-client ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/podbackup --uid 10001 podbackup \
 && mkdir -p /var/lib/podbackup/cache \
 && chown -R podbackup:podbackup /var/lib/podbackup \
 && chmod 0700 /var/lib/podbackup/cache

WORKDIR /srv/podbackup
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
# Every dependency at the version pinned in constraints.txt (`make constraints` refreshes it).
# Editable, so the code runs from here: `podbackup migrate` finds alembic.ini and migrations/
# beside app/ (a wheel in site-packages would have neither).
RUN pip install -c constraints.txt -e . && pip check

USER podbackup
EXPOSE 8000
# The API's check. A worker serves no HTTP: its containers run `podbackup worker-health`
# instead (docker-compose.yml's worker service; `docker run --health-cmd` elsewhere).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["podbackup", "api", "--host", "0.0.0.0", "--port", "8000"]
