"""The job engine: what runs jobs inside a worker process (claim, heartbeat, handler, end),
reconciles Postgres with Redis, and holds repository locks. The API side of jobs (rules,
endpoints, schemas, the jobs table's SQL) lives in ``app.jobs``."""
