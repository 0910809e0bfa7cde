"""Core INSERTs for freshly built ORM objects.

The hot path writes about ten rows per alert; the ORM's unit-of-work flush costs
several times more than the INSERTs themselves, so new rows go through Core,
table by table in the order given (parents before children), on the session's
connection (the ORM session's execute layer adds nothing for a plain INSERT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from services.db.models import Base

#: Per mapped class: its table, one INSERT statement, and (attribute, column, is_pk).
_Plan = tuple[Table, Insert, tuple[tuple[str, str, bool], ...]]
_plans: dict[type[Base], _Plan] = {}


def _plan(cls: type[Base]) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        mapper: Mapper[Any] = inspect(cls)
        table = mapper.local_table
        assert isinstance(table, Table)
        columns = tuple(
            (attr.key, attr.columns[0].name, bool(attr.columns[0].primary_key))
            for attr in mapper.column_attrs
        )
        plan = _plans[cls] = (table, insert(table), columns)
    return plan


def _row(obj: Base, columns: tuple[tuple[str, str, bool], ...]) -> dict[str, Any]:
    # A new object's values live in its __dict__; reading it directly skips the
    # instrumented attribute machinery (an unset attribute reads as None either way).
    values = obj.__dict__
    row: dict[str, Any] = {}
    for key, column, primary_key in columns:
        value = values.get(key)
        if value is None and primary_key:
            continue  # let the database assign it
        row[column] = value
    return row


#: INSERT statements with their rows, table by table in the order first seen.
Prepared = list[tuple[Insert, list[dict[str, Any]]]]


def prepare_inserts(objects: Sequence[Base]) -> Prepared:
    """The rows of ``objects`` as plain parameters, built before a unit of work begins:
    on SQLite, whatever runs inside one holds the database's only write lock."""
    grouped: dict[Table, tuple[Insert, list[dict[str, Any]]]] = {}
    for obj in objects:
        table, statement, columns = _plan(type(obj))
        grouped.setdefault(table, (statement, []))[1].append(_row(obj, columns))
    return list(grouped.values())


async def insert_prepared(session: AsyncSession, prepared: Prepared) -> None:
    if not prepared:
        return
    connection = await session.connection()
    for statement, rows in prepared:
        await connection.execute(statement, rows)


async def insert_all(session: AsyncSession, objects: Sequence[Base]) -> None:
    await insert_prepared(session, prepare_inserts(objects))
