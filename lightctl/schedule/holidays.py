"""Names of the statutory holidays, so plans may say 春节 or Spring Festival alike."""

from __future__ import annotations

import chinese_calendar

# English name (as chinesecalendar gives it) -> Chinese name.
HOLIDAY_NAMES: dict[str, str] = {h.value: h.chinese for h in chinese_calendar.Holiday}


def canonical_holiday(name: str) -> str | None:
    """The English name chinesecalendar uses for a holiday given in English or Chinese, else None."""
    wanted = name.strip().lower().removesuffix("节")  # 中秋 and 中秋节 are the same day
    for english, chinese in HOLIDAY_NAMES.items():
        if wanted in (english.lower(), chinese.removesuffix("节")):
            return english
    return None
