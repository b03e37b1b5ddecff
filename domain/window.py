"""When a class may be booked: in the future, between a minimum lead and a limit ahead."""

from datetime import datetime, timedelta

from domain.errors import InPast, OutsideWindow


def check_window(
    start_at: datetime, now: datetime, *, lead: timedelta, ahead: timedelta, what: str
) -> None:
    """`what` starts in the future, at least `lead` and at most `ahead` from now."""
    if start_at <= now:
        raise InPast(f"{what} starts in the past", start_at=start_at.isoformat())
    earliest, latest = now + lead, now + ahead
    if not earliest <= start_at <= latest:
        raise OutsideWindow(
            f"{what} starts between the minimum lead and the limit ahead",
            start_at=start_at.isoformat(),
            earliest=earliest.isoformat(),
            latest=latest.isoformat(),
        )
