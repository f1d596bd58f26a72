"""The newest Alembic revision in migrations/versions (tests keep it in step with Alembic).

Knowing it without importing Alembic or SQLAlchemy lets `open` and the fast listings check
the schema with one query.
"""

SCHEMA_HEAD = "0014"
