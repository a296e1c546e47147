"""Periods: a dataset version is a month (``YYYY-MM``), a training run a quarter (``YYYY-Qn``).

Free text is refused: a period names when the data was gathered, so one in the future (built
early) would make that month's own job skip it, and a suffix like ``2026-Q4-retry`` hides a
retry that belongs on the run itself (``training_run_retry``).
"""

from __future__ import annotations

import re
from datetime import date

from cogloop.errors import ApplicationError

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
QUARTER = re.compile(r"(\d{4})-Q([1-4])")


def current_month(today: date) -> str:
    return f"{today.year:04d}-{today.month:02d}"


def quarter_of(d: date) -> str:
    return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"


def month_checked(period: str, *, today: date) -> str:
    m = MONTH.fullmatch(period)
    if m is None:
        raise _invalid(period, "a month, YYYY-MM")
    if (int(m.group(1)), int(m.group(2))) > (today.year, today.month):
        raise _invalid(period, f"a month that has begun (it is {current_month(today)})")
    return period


def quarter_checked(period: str, *, today: date) -> str:
    m = QUARTER.fullmatch(period)
    if m is None:
        raise _invalid(period, "a quarter, YYYY-Qn")
    if (int(m.group(1)), int(m.group(2))) > (today.year, (today.month - 1) // 3 + 1):
        raise _invalid(period, f"a quarter that has begun (it is {quarter_of(today)})")
    return period


def _invalid(period: str, want: str) -> ApplicationError:
    return ApplicationError(
        f"period {period!r} must be {want}",
        code="invalid_period",
        extra={"fields": {"period": [f"must be {want}"]}},
    )
