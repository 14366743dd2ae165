"""Console progress of a CI run (stage > job > step lines) and the summary of how runs ended."""
from __future__ import annotations

import time
from pathlib import Path

FAILURE_LINES = 12  # of a failed step's log, shown on the console
SYMBOLS = {"Succeeded": "ok", "SucceededWithIssues": "ok!", "Failed": "FAIL", "Skipped": "skip",
           "Canceled": "cancel"}


class Progress:
    """stage > job > step lines as the run goes; on a terminal the running step ticks in place."""

    def __init__(self, stream=None):
        from ml_service.live import LiveLine

        self.out = LiveLine(stream)
        self.names: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.logs: dict[str, str] = {}

    def __call__(self, path: str, record: dict) -> None:
        from ml_service.ci.runner.terminal import sanitize

        if record.get("display"):
            self.names[path] = record["display"]
        depth = path.count("/")
        label = "  " * depth + self.names.get(path, path.rsplit("/", 1)[-1])
        status = record.get("status")
        if status == "header":
            self.out.line(record["display"])
        elif status == "running":
            self.started[path] = time.monotonic()
            if record.get("log"):
                self.logs[path] = record["log"]
            if depth < 2:
                self.out.line(f"{'..':<6} {label}")
            else:
                self.out.start(f"{'..':<6} {label}")
        elif status == "waiting":
            self.out.line(f"{'WAIT':<6} {label}: {record.get('detail') or 'waiting for approval'}")
        elif status == "completed":
            result = record.get("result", "")
            took = f" {time.monotonic() - self.started[path]:.1f}s" if path in self.started else ""
            detail = f"  ({sanitize(record['detail'])})" if record.get("detail") and result != "Succeeded" else ""
            self.out.line(f"{SYMBOLS.get(result, result):<6} {label}  {result}{took}{detail}")
            if result == "Failed" and path in self.logs:
                self._show_failure(self.logs[path], self.names.get(path, path.rsplit("/", 1)[-1]))

    def _show_failure(self, log: str, name: str) -> None:
        """The last lines of a failed step's log, and the command that shows all of it."""
        from ml_service.ci.runner.terminal import sanitize

        try:  # only the log's end is read (a log may be large); a step's control sequences are shown escaped
            with open(log, "rb") as file:
                file.seek(max(0, Path(log).stat().st_size - 65536))
                lines = file.read().decode(errors="replace").rstrip().splitlines()[-FAILURE_LINES:]
        except OSError:
            lines = []
        for line in lines:
            self.out.line(f"         | {sanitize(line)}")
        run_id = Path(log).parent.name
        self.out.line(f"         full log: mlops ci logs {run_id} --step \"{name}\"")


def summary(store, run_ids: list[int]) -> int:
    """Print how each run ended (a waiting one with the commands that decide it); 1 when one did not succeed."""
    code = 0
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run.status == "waiting":
            pending = store.approvals(run_id, "pending")
            stage = pending[0]["stage"] if pending else "?"
            if pending and pending[0].get("kind") == "validation":  # a ManualValidation step
                print(f"run {run_id} ({run.pipeline}) is waiting for the manual validation {pending[0]['step']}"
                      + (f": {pending[0]['instructions']}" if pending[0].get("instructions") else "."))
            else:
                print(f"run {run_id} ({run.pipeline}) is waiting for approval of stage {stage} "
                      f"(environment {pending[0]['environment'] if pending else '?'}).")
            print(f"  approve: mlops ci approve {run_id} --comment \"...\"    reject: mlops ci reject {run_id}")
        else:
            print(f"run {run_id} ({run.pipeline}): {run.result}")
            if run.result not in ("succeeded", "succeededWithIssues"):
                code = 1
        for text in (run.state or {}).get("summaries", []):
            print("\n".join(f"  {line}" for line in text.splitlines()))
    return code
