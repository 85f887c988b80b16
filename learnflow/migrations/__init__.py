"""Alembic migrations of the write model, runnable from code (`learnflow migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(sync_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("sqlalchemy.url", sync_url.replace("%", "%%"))
    return config


def upgrade_to_head(sync_url: str) -> None:
    command.upgrade(alembic_config(sync_url), "head")
