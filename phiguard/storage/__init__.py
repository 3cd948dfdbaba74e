"""Operational storage (SQLAlchemy 2 + Alembic) and the analytics event store."""
