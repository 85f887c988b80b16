"""Alembic environment: migrates the database of the project's own settings, as the schema's
owner (LEARNFLOW_POSTGRES_MIGRATION_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from learnflow.settings import Settings

url = context.config.get_main_option("sqlalchemy.url") or Settings.from_env().postgres_migration_url
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
