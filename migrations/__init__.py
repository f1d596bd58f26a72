"""Alembic migrations for the registry database (applied automatically on open)."""
