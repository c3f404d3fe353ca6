"""Timer triggers, on six-field NCRONTAB schedules in UTC, as the Functions host runs them.

`{second} {minute} {hour} {day} {month} {day-of-week}`: each field is `*`, a number, a range `a-b`,
a step `*/n`, `a-b/n` or `a/n` (from a to the field's end), or a comma-separated list of these;
months and days of the week may be written as names (`jan`, `mon`, ...), Sunday is 0. As in
NCrontab, the host's library, a time must match every field, day of month and day of week
alike. `%Setting%` in a schedule is the app setting's value.

A timer waits for its next occurrence, runs the function with a `TimerRequest`, and only then
looks for the next occurrence after the current time: runs of one timer never overlap, and an
occurrence missed while a run takes long is skipped, as the host's TimerListener does.
`run_on_startup` runs it once when the host starts. `past_due` is always False: the host sets
it only from the schedule status that its `use_monitor` keeps in storage across restarts, and
the dev host keeps none.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.functions.decorators.function_app import Function
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.timer import TimerRequest

from devhost.queues import resolve

if TYPE_CHECKING:
    from devhost import Invoker, Trigger

log = logging.getLogger("devhost.timers")

MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
# name, lowest, highest, names (the first one stands for the lowest value); a name may be written
# in full or by its first three letters, in any case
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 6, DAYS),
)
GREGORIAN_CYCLE = timedelta(days=146097)  # 400 years: the calendar repeats after it


@dataclass(frozen=True)
class Schedule:
    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """ValueError if `text` is not a six-field NCRONTAB expression, or never occurs."""
        fields = text.split()
        if len(fields) != 6:
            raise ValueError(
                f"schedule {text!r}: NCRONTAB needs six fields, "
                "{second} {minute} {hour} {day} {month} {day-of-week}"
            )
        try:
            values = [_field(field, *spec) for field, spec in zip(fields, FIELDS, strict=True)]
        except ValueError as exc:
            raise ValueError(f"schedule {text!r}: {exc}") from None
        seconds, minutes, hours, days, months, weekdays = values
        schedule = cls(
            text,
            tuple(sorted(seconds)),
            tuple(sorted(minutes)),
            tuple(sorted(hours)),
            frozenset(days),
            frozenset(months),
            frozenset(weekdays),
        )
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # raises if it never occurs
        return schedule

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (to the second), in UTC."""
        start = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        day = start.date()
        earliest = (start.hour, start.minute, start.second)
        while day < start.date() + GREGORIAN_CYCLE:
            if day.month not in self.months:
                last = calendar.monthrange(day.year, day.month)[1]
                day, earliest = date(day.year, day.month, last) + timedelta(days=1), (0, 0, 0)
                continue
            if day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays:
                found = self._first_time(earliest)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
            day, earliest = day + timedelta(days=1), (0, 0, 0)
        raise ValueError(f"schedule {self.text!r} never occurs")

    def _first_time(self, earliest: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """The first (hour, minute, second) of the schedule at or after `earliest` in a day."""
        for hour in self.hours:
            if hour < earliest[0]:
                continue
            for minute in self.minutes:
                if (hour, minute) < earliest[:2]:
                    continue
                for second in self.seconds:
                    if (hour, minute, second) >= earliest:
                        return hour, minute, second
        return None


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    def value(token: str) -> int:
        spelled = [n for n in names if token.lower() in (n, n[:3])]
        if token.isdigit():
            number = int(token)
        elif spelled:
            number = names.index(spelled[0]) + low
        else:
            raise ValueError(f"{name} field: {token!r} is not a value")
        if not low <= number <= high:
            raise ValueError(f"{name} field: {number} is not in {low}-{high}")
        return number

    values: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} field: {item!r} has no valid step")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = value(a), value(b)
        else:
            first = value(span)
            last = high if slash else first
        if first > last:
            raise ValueError(f"{name} field: {item!r} is an empty range")
        values.update(range(first, last + 1, step))
    return values


def timer_triggers(
    functions: Iterable[Function], settings: Mapping[str, str], invoke: Invoker
) -> dict[str, Trigger]:
    """A timer for each timer-triggered function. One whose schedule does not resolve or parse is
    left out with an error in the log, as the host runs the others when one is in error."""
    triggers: dict[str, Trigger] = {}
    for function in functions:
        trigger = function.get_trigger()
        if not isinstance(trigger, TimerTrigger):
            continue
        name = function.get_function_name() or ""
        try:
            schedule = Schedule.parse(resolve(str(trigger.schedule), settings))
        except ValueError as exc:
            log.error("The '%s' function is in error: %s", name, exc)
            continue
        function_ = function.get_user_function()
        startup = bool(trigger.run_on_startup)
        triggers[name] = Timer(name, function_, str(trigger.name), schedule, startup, invoke)
    return triggers


class Timer:
    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        argument: str,
        schedule: Schedule,
        run_on_startup: bool,
        invoke: Invoker,
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self._function = function
        self._argument = argument
        self._invoke = invoke
        self._running = asyncio.Lock()  # one run at a time, scheduled or from /admin

    async def fire(self, text: str) -> None:
        """As Core Tools' admin endpoint: run now (after a run under way); the input is ignored."""
        async with self._running:
            await self._invoke(self._function, {self._argument: TimerRequest(past_due=False)})

    async def run(self) -> None:
        if self.run_on_startup:
            await self._run()
        due = datetime.now(UTC)
        while True:
            # After the last occurrence, and after now: occurrences missed meanwhile are skipped.
            due = self.schedule.next_after(max(datetime.now(UTC), due))
            while (left := (due - datetime.now(UTC)).total_seconds()) > 0:
                await asyncio.sleep(min(left, 60))  # the wall clock is looked at again each minute
            await self._run()

    async def _run(self) -> None:
        try:
            await self.fire("")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed)", self.name)
