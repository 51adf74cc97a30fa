"""When a flow runs: cnvrg's ``schedule`` (once, at a date and time) and ``recurring`` (cron)."""

from __future__ import annotations

from datetime import datetime

# cnvrg documents 31.01.2021 16:25, 31.01.2021 4:25PM, 2021.01.31 16:25 and 2021.01.31 4:25PM;
# seconds and a space before AM/PM are accepted too.
_DAYS = ("%d.%m.%Y", "%Y.%m.%d")
_TIMES = ("%H:%M", "%H:%M:%S", "%I:%M%p", "%I:%M %p", "%I:%M:%S%p", "%I:%M:%S %p")
FORMS = "31.01.2021 16:25, 31.01.2021 4:25PM, 2021.01.31 16:25 or 2021.01.31 4:25PM (seconds optional)"


def parse_schedule(text: str) -> datetime:
    """The naive local date and time of a ``schedule`` value; ValueError naming the forms."""
    value = " ".join(text.split())
    for day in _DAYS:
        for time in _TIMES:
            try:
                return datetime.strptime(value, f"{day} {time}")
            except ValueError:
                continue
    raise ValueError(f"schedule '{text}' is not a date and time cnvrg understands; use {FORMS}")


def check_cron(expression: str) -> None:
    """ValueError with croniter's reason when ``expression`` is not a valid cron schedule."""
    from croniter import CroniterBadCronError, croniter

    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError) as e:
        raise ValueError(
            f"recurring '{expression}' is not a valid cron schedule ({e}); "
            'for example "30 * * * *" runs at 30 minutes past every hour'
        ) from None


def check_timezone(name: str) -> None:
    import pendulum

    try:
        pendulum.timezone(name)
    except Exception:
        raise ValueError(f"timezone '{name}' is not a known time zone (use a name such as 'Europe/Berlin')") from None
