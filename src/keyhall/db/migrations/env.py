"""Alembic environment: runs migrations on the connection handed over by keyhall.db.migrate."""

from __future__ import annotations

from alembic import context

from keyhall.db.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `keyhall migrate` (keyhall.db.migrate), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
