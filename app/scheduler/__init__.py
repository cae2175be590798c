"""Nightly schedules: backups in each pod's window, plus the prune and check cadences."""
