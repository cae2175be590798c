"""Secrets at rest across the domain tables: re-encrypting every encrypted column with the
newest key."""
