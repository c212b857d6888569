"""Fixtures shared with the storage tests: a PostgreSQL schema of the test's own (loud skip without one)."""

from __future__ import annotations

from tests.store.conftest import pg_schema, postgresql

__all__ = ["pg_schema", "postgresql"]
