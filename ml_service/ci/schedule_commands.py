"""`mlops ci scheduler` and `mlops ci schedules`: pipelines' `schedules:` run locally (issue 13)."""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register the schedule actions on the `mlops ci` sub-parser."""
