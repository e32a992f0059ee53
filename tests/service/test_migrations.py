"""The migrations build exactly the schema tables.py describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from keyhall.container import Container
from keyhall.db import migrate
from keyhall.db.tables import metadata


def test_migrated_schema_matches_tables(container: Container) -> None:
    assert migrate.is_up_to_date(container.db.engine)
    with container.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_upgrade_is_idempotent(container: Container) -> None:
    migrate.upgrade(container.db.engine)
    assert migrate.current_revision(container.db.engine) == migrate.head_revision()
