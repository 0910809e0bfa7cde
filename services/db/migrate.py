"""Schema changes go through Alembic; the service never calls create_all."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from services.db.engine import Database


def alembic_config(url: str) -> Config:
    import migrations  # the package ships with the distribution

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade_to_head(db: Database) -> None:
    """Run pending migrations on the service's own engine (one connection, one lock)."""
    config = alembic_config(db.url)

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade)
