"""Core INSERTs for freshly built ORM objects.

The hot path writes seven rows per alert; the ORM's unit-of-work flush costs
several times more than the INSERTs themselves, so new rows go through Core,
table by table in the order given (parents before children).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.models import Base


def _row(obj: Base) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    row: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        value = getattr(obj, attr.key)
        if value is None and attr.columns[0].primary_key:
            continue  # let the database assign it
        row[attr.columns[0].name] = value
    return row


async def insert_all(session: AsyncSession, objects: Sequence[Base]) -> None:
    grouped: dict[Table, list[dict[str, Any]]] = {}
    for obj in objects:
        table = inspect(obj).mapper.local_table
        assert isinstance(table, Table)
        grouped.setdefault(table, []).append(_row(obj))
    for table, rows in grouped.items():
        await session.execute(insert(table), rows)
