"""Anonymous figures over every alert: what KVKK erasure leaves behind, and enough of it
to show that nothing needed for statistics is lost."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from schemas.alerts import AlertStatistics
from services.db.engine import Database
from services.db.models import Alert, Delivery

AGE_BANDS = ((0, 5), (6, 11), (12, 17), (18, 64), (65, 120))


def age_band(age: int) -> str:
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "unknown"


async def alert_statistics(db: Database) -> AlertStatistics:
    status: Counter[str] = Counter()
    category: Counter[str] = Counter()
    band: Counter[str] = Counter()
    reason: Counter[str] = Counter()
    province: Counter[str] = Counter()
    erased = 0
    async with db.read() as session:
        rows = await session.execute(
            select(
                Alert.status,
                Alert.category,
                Alert.subject_age,
                Alert.resolution_reason,
                Alert.area,
                Alert.erased_at,
            )
        )
        for row_status, row_category, age, row_reason, area, erased_at in rows:
            status[row_status] += 1
            category[row_category] += 1
            band[age_band(age)] += 1
            if row_reason is not None:
                reason[row_reason] += 1
            for code in {p["code"] for p in area.get("resolved", {}).get("provinces", [])}:
                province[code] += 1
            erased += erased_at is not None
        deliveries: dict[str, dict[str, int]] = {}
        for kind, delivery_status, count in await session.execute(
            select(Delivery.kind, Delivery.status, func.count()).group_by(
                Delivery.kind, Delivery.status
            )
        ):
            deliveries.setdefault(kind, {})[delivery_status] = count
    return AlertStatistics(
        total=sum(status.values()),
        erased=erased,
        by_status=dict(status),
        by_category=dict(category),
        by_age_band=dict(band),
        by_end_reason=dict(reason),
        by_province=dict(sorted(province.items())),
        deliveries=deliveries,
    )
