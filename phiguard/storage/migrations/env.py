"""Alembic environment: phiguard passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from phiguard.storage.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - phiguard always passes a connection
    raise RuntimeError("run migrations through phiguard.storage.base.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
