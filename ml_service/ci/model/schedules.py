"""`schedules:` of the pipeline files, with Azure Pipelines' meaning (cron in UTC, branch filters, always).

    schedules:
      - cron: "0 3 * * *"          # mm HH DD MM DW, UTC; names (Mon, January) as NCrontab reads them
        displayName: Nightly retraining
        branches: {include: [main], exclude: [releases/old/*]}
        always: 'false'            # default: run only if the branch changed since the last successful
                                   # scheduled run of the pipeline (else the skip is recorded)
        batch: 'false'             # true: no new run while a scheduled run of the pipeline is in progress

Cron expressions are read by croniter, with NCrontab's rule (the parser Azure Pipelines uses): when
both the day of month and the day of week are restricted, a time must match both. Schedules are read
from the main file only (as on Azure: never from templates).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from ml_service.ci.model import triggers
from ml_service.ci.model.expressions import as_bool
from ml_service.errors import UsageError

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
MINUTE = timedelta(minutes=1)


class ScheduleError(UsageError):
    """A `schedules:` entry cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class Schedule:
    """One entry of a pipeline's `schedules:`."""

    pipeline: str
    file: Path
    cron: str
    display_name: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    always: bool = False
    batch: bool = False

    @property
    def key(self) -> str:
        """Identifies the schedule in the scheduler's state (its pipeline, name and cron)."""
        return f"{self.pipeline}|{self.display_name}|{self.cron}"

    def applies_to(self, branch: str) -> bool:
        """Branch filters: includes (none: every branch) minus excludes."""
        return triggers.branch_filter_matches(
            {"branches": {"include": list(self.include), "exclude": list(self.exclude)}}, branch)

    def is_due(self, minute: datetime) -> bool:
        """Does the cron expression fire in this minute (UTC)?"""
        from croniter import croniter

        return croniter.match(_expression(self.cron), _utc(minute).replace(second=0, microsecond=0), day_or=False)

    def fires(self, after: datetime, until: datetime) -> list[datetime]:
        """Fire times t with after < t <= until (UTC minutes), oldest first."""
        from croniter import croniter

        out, cursor = [], croniter(_expression(self.cron), _utc(after), day_or=False)
        while True:
            moment = cursor.get_next(datetime)
            if moment > _utc(until):
                return out
            out.append(moment)

    def next_fire(self, now: datetime) -> datetime:
        """The first fire time after now."""
        from croniter import croniter

        return croniter(_expression(self.cron), _utc(now), day_or=False).get_next(datetime)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _expression(cron: str) -> str:
    """Full English day and month names (NCrontab accepts them) as the three letters croniter reads."""
    def shorten(match: re.Match) -> str:
        word = match.group(0).lower()
        return word[:3] if word in _DAYS or word in _MONTHS else match.group(0)
    return re.sub(r"[A-Za-z]+", shorten, cron.strip())


def parse_time(text: str) -> datetime:
    """An ISO time (`2026-11-26T03:00`, `...Z`, `...+01:00`) as UTC; without an offset it is UTC."""
    try:
        return _utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ScheduleError(f"--at: {text!r} is not an ISO time such as 2026-11-26T03:00:00Z") from None


def _names(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise ScheduleError(f"{where}: expected a branch name or a list of them")


def read_file(path: Path, text: str | None = None) -> list[Schedule]:
    """The schedules of one pipeline file (or of its text in some branch); a bad entry is an error naming
    the file and the entry."""
    from croniter import croniter

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text() if text is None else text) or {}
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: malformed YAML: {exc}") from None
    entries = document.get("schedules") if isinstance(document, dict) else None
    if not entries:
        return []
    if not isinstance(entries, list):
        raise ScheduleError(f"{path}: schedules: expected a list of schedules")
    found = []
    for index, entry in enumerate(entries):
        where = f"{path}: schedules[{index}]"
        if not isinstance(entry, dict) or not entry.get("cron"):
            raise ScheduleError(f"{where}: every schedule needs a cron expression")
        cron = str(entry["cron"])
        if len(cron.split()) != 5 or not croniter.is_valid(_expression(cron)):
            raise ScheduleError(f"{where}.cron: {cron!r} is not a five-field cron expression (mm HH DD MM DW, UTC)")
        branches = entry.get("branches") or {}
        if isinstance(branches, list):  # a plain list means include
            branches = {"include": branches}
        if not isinstance(branches, dict):
            raise ScheduleError(f"{where}.branches: expected include/exclude lists")
        include = _names(branches.get("include"), f"{where}.branches.include")
        exclude = _names(branches.get("exclude"), f"{where}.branches.exclude")
        always, batch = as_bool(entry.get("always", False)), as_bool(entry.get("batch", False))
        found.append(Schedule(pipeline=path.stem, file=path, cron=cron,
                              display_name=str(entry.get("displayName") or cron), include=include,
                              exclude=exclude, always=always, batch=batch))
    return found


def read_all(source_dir: Path) -> list[Schedule]:
    """Every schedule of every pipeline under source_dir/.pipelines, by pipeline name."""
    from ml_service.ci.scaffold import PIPELINES_DIR

    found: list[Schedule] = []
    for path in sorted((Path(source_dir) / PIPELINES_DIR).glob("*.yml")):
        found += read_file(path)
    return found
