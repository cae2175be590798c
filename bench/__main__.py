"""`make bench`: the benchmarks and how to run each (they print ratios; none is asserted)."""

from __future__ import annotations

BENCHES = [
    ("backup_overhead", "backup job vs plain `restic backup` (first and unchanged runs)"),
    ("restore_speed", "restore job vs plain `restic restore`"),
    ("sftp_mirror", "SFTP mirror vs the OpenSSH `sftp` client; unchanged re-mirror bytes"),
    ("dump_memory", "worker peak RSS while dumping a database (--gb 2)"),
    ("browse_index", "folder listing from the index vs `restic ls` (100,000 files)"),
    ("snapshot_list", "snapshot list of a pod with 1,000 snapshots"),
    ("scheduler_plan", "planning 100,000 pods and one tick claiming 10,000"),
    ("target_watch", "one watch pass probing 1,000 S3 targets vs plain GETs"),
    ("load", "200 clients on status/jobs/snapshots vs a bare FastAPI endpoint"),
    ("load_fleet", "40 pods backed up at once across 2 worker processes"),
    ("platform_fleet", "platform: shared vs per-pod storage (storage), capacity (capacity)"),
]


def main() -> None:
    print("Benchmarks (figures and results: bench/README.md):")
    for name, what in BENCHES:
        print(f"  .venv/bin/python -m bench.{name:<16} {what}")


if __name__ == "__main__":
    main()
