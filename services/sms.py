"""The Turkish SMS template. It never includes the person's name: a minor's identity
deserves the strictest care, and the description is enough to recognise someone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schemas.alerts import SubjectCategory

# Türkiye has kept UTC+3 all year since 2016; a fixed offset needs no tz database.
TURKIYE_TIME = timezone(timedelta(hours=3), "TRT")

CATEGORY_TR = {
    SubjectCategory.child: "çocuk",
    SubjectCategory.adult: "kişi",
    SubjectCategory.vulnerable_adult: "korunmaya muhtaç kişi",
}

TEMPLATE = (
    "KAYIP ALARMI: {age} yaşında {category}. {description} "
    "Son görülme: {place}, {time}. Görenler 155 Polis İmdat'ı arasın."
)


def render_sms(
    category: SubjectCategory,
    age: int,
    description: str,
    place: str | None,
    seen_at: datetime,
) -> str:
    local = seen_at.astimezone(TURKIYE_TIME)
    text = description.strip()
    if not text.endswith((".", "!", "?")):
        text += "."
    return TEMPLATE.format(
        age=age,
        category=CATEGORY_TR[category],
        description=text,
        place=place or "konum bilgisi",
        time=local.strftime("%d.%m.%Y %H:%M"),
    )
