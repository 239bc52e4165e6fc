"""Cron schedules as Kubernetes' CronJob reads them (robfig/cron's standard parser).

`parse(text)` accepts what `cron.ParseStandard` accepts, with the same error
messages (the API server puts them in the 422 on spec.schedule):

* five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12
  or jan-dec), day of week (0-6 or sun-sat); each a comma list of `*`, `?`,
  `N`, `N-M`, with an optional `/step` (`N/step` means `N-max/step`);
* the macros @yearly (@annually), @monthly, @weekly, @daily (@midnight),
  @hourly and `@every <duration>`.

Day of month and day of week combine as in cron: when both are restricted
(neither is `*` or `?`), either one matching is enough; otherwise both must.

`Schedule.next(after, tz)` is the first matching minute strictly after `after`
in the time zone `tz`, as a UTC-aware datetime (None when nothing matches in
the next five years, e.g. 30 February).  Times are wall-clock times of the
zone: a time that a DST jump skips runs at the first instant after the gap.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "load_zone", "parse"]

UTC = dt.UTC
STAR = 1 << 63  # the field was `*` or `?` (matters for day of month / day of week)
YEAR_LIMIT = 5

_MONTHS = {n: i + 1 for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                             "nov", "dec"))}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class _Bounds:
    min: int
    max: int
    names: dict[str, int] | None = None


_MINUTE, _HOUR, _DOM = _Bounds(0, 59), _Bounds(0, 23), _Bounds(1, 31)
_MONTH, _DOW = _Bounds(1, 12, _MONTHS), _Bounds(0, 6, _DAYS)

_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule that does not parse; the message is robfig/cron's."""


def _int(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    n = int(text)
    if n < 0:
        raise CronError(f"negative number ({n}) not allowed: {text}")
    return n


def _int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    return _int(text)


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = b.min, b.max, STAR
    else:
        start = _int_or_name(low_high[0], b.names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_high) == 1:  # "N/step" means "N-max/step"
            end = b.max
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.min:
        raise CronError(f"beginning of range ({start}) below minimum ({b.min}): {expr}")
    if end > b.max:
        raise CronError(f"end of range ({end}) above maximum ({b.max}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for i in range(start, end + 1, step):
        bits |= 1 << i
    return bits | extra


def _field(text: str, b: _Bounds) -> int:
    bits = 0
    for part in text.split(","):
        bits |= _range(part, b)
    return bits


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """A Go duration string ("1h30m", "90s") in seconds."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_RE.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise CronError(f'failed to parse duration {text}: time: invalid duration "{text}"')
    return total


@dataclass(frozen=True)
class Schedule:
    minute: int = 0
    hour: int = 0
    dom: int = 0
    month: int = 0
    dow: int = 0
    every: float | None = None  # seconds, for `@every <duration>`

    def _day_matches(self, day: dt.datetime) -> bool:
        dom_match = bool(1 << day.day & self.dom)
        dow_match = bool(1 << ((day.weekday() + 1) % 7) & self.dow)
        if self.dom & STAR or self.dow & STAR:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, after: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime | None:
        """The first scheduled instant strictly after `after` (an aware datetime), in UTC."""
        after = after.astimezone(UTC)
        if self.every is not None:
            step = max(1.0, float(int(self.every)))  # at least a second, whole seconds as robfig
            base = after.replace(microsecond=0)
            return base + dt.timedelta(seconds=step)
        # Wall-clock search in the zone, one field at a time (robfig's Next), from the next minute.
        local = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + dt.timedelta(minutes=1)
        limit = local.year + YEAR_LIMIT
        while local.year <= limit:
            if not 1 << local.month & self.month:
                year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
                local = dt.datetime(year, month, 1)
                continue
            if not self._day_matches(local):
                local = dt.datetime(local.year, local.month, local.day) + dt.timedelta(days=1)
                continue
            if not 1 << local.hour & self.hour:
                local = local.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if not 1 << local.minute & self.minute:
                local += dt.timedelta(minutes=1)
                continue
            instant = _to_utc(local, tz)
            if instant > after:
                return instant
            local += dt.timedelta(minutes=1)  # a wall time the clock passed twice: take the next one
        return None

    def times_between(self, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo = UTC, limit: int = 0):
        """Scheduled instants in (start, end], oldest first; at most `limit` when > 0."""
        out: list[dt.datetime] = []
        t = self.next(start, tz)
        while t is not None and t <= end:
            out.append(t)
            if limit and len(out) >= limit:
                break
            t = self.next(t, tz)
        return out


def _to_utc(local: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """A wall time of `tz` as a UTC instant: the earlier of two in a repeated hour, and in a DST gap
    the instant the pre-jump offset gives (02:30 skipped -> 03:30), as Go's time.Date does."""
    return local.replace(tzinfo=tz).astimezone(UTC)


def parse(text: str) -> Schedule:
    """A schedule from its text (see the module docstring); raises CronError as robfig/cron would."""
    if not isinstance(text, str) or not text:
        raise CronError("empty spec string")
    spec = text
    if spec.startswith(("TZ=", "CRON_TZ=")):
        head, _, spec = spec.partition(" ")
        try:
            load_zone(head.split("=", 1)[1])
        except CronError as exc:
            raise CronError(f"provided bad location {head.split('=', 1)[1]}: {exc}") from None
        spec = spec.strip()
    if spec.startswith("@"):
        if spec.startswith("@every "):
            seconds = _duration(spec[len("@every "):].strip())
            return Schedule(every=seconds)
        macro = _MACROS.get(spec)
        if macro is None:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = macro
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return Schedule(_field(fields[0], _MINUTE), _field(fields[1], _HOUR), _field(fields[2], _DOM),
                    _field(fields[3], _MONTH), _field(fields[4], _DOW))


def load_zone(name: str | None) -> dt.tzinfo:
    """The IANA zone `name` (UTC when empty or None); CronError when unknown."""
    if not name or name == "UTC":
        return UTC
    if name == "Local" or name.startswith("/") or ".." in name:
        raise CronError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None
