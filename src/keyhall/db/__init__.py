"""Storage: engine, tables and Alembic migrations, on SQLite (default) and PostgreSQL."""
