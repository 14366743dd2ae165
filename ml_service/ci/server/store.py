"""The local CI run store: sqlite under .mlops/ci, logs and artifacts in files beside it.

Every write is one short transaction (WAL mode, busy timeout), so several runs can record at
once. A run names the process that runs it (owner: host, boot id, pid, start time); a run whose
process died (kill -9, a crash, a reboot) is ended failed, with the reason, by the next command
that opens the store; its logs and everything else stay. (Its step processes died with it: the
engine's watchdog kills them.)
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, file TEXT NOT NULL, reason TEXT NOT NULL,
  branch TEXT, commit_sha TEXT, status TEXT NOT NULL, result TEXT, requested_by TEXT, created REAL,
  started REAL, finished REAL, pid INTEGER, params TEXT, source_dir TEXT, resources TEXT,
  triggered_by INTEGER, state TEXT, owner TEXT, requested_proof TEXT
);
CREATE TABLE IF NOT EXISTS records (
  run_id INTEGER NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, name TEXT, display TEXT, position INTEGER,
  status TEXT NOT NULL, result TEXT, started REAL, finished REAL, log TEXT, detail TEXT,
  PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS approvals (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, stage TEXT NOT NULL, job TEXT NOT NULL,
  environment TEXT NOT NULL, status TEXT NOT NULL, requested REAL, timeout_at REAL, decided REAL,
  approver TEXT, comment TEXT, approver_proof TEXT, kind TEXT, step TEXT, approvers TEXT, allow_self INTEGER,
  instructions TEXT, notify TEXT, on_timeout TEXT
);
CREATE TABLE IF NOT EXISTS counters (
  pipeline TEXT NOT NULL, prefix TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (pipeline, prefix)
);
CREATE TABLE IF NOT EXISTS counter_uses (
  run_id INTEGER NOT NULL, prefix TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (run_id, prefix)
);
"""

# Run status: queued, running, waiting, completed. Result when completed: succeeded,
# succeededWithIssues, failed, canceled, rejected (and interrupted, in stores of older versions).
MIGRATIONS = {("runs", "owner"): "ALTER TABLE runs ADD COLUMN owner TEXT",
              ("runs", "requested_proof"): "ALTER TABLE runs ADD COLUMN requested_proof TEXT",
              ("approvals", "approver_proof"): "ALTER TABLE approvals ADD COLUMN approver_proof TEXT",
              **{("approvals", column): f"ALTER TABLE approvals ADD COLUMN {column} {kind}" for column, kind in (
                  ("kind", "TEXT"), ("step", "TEXT"), ("approvers", "TEXT"), ("allow_self", "INTEGER"),
                  ("instructions", "TEXT"), ("notify", "TEXT"), ("on_timeout", "TEXT"))}}
# An approval's kind: "environment" (NULL in older stores: a deployment job's environment check) or "validation"
# (a ManualValidation step of an agentless job: runner/validation.py), which carries its own approvers,
# self-approval, instructions, people to notify and what its timeout does.
VALIDATION_FIELDS = ("kind", "step", "approvers", "allow_self", "instructions", "notify", "on_timeout")


# What the Studio's run list filters on: a run's outcome is its result when completed, else its status.
OUTCOME_SQL = "CASE WHEN status = 'completed' AND COALESCE(result, '') != '' THEN result ELSE status END"
FILTERS = {"pipeline": "pipeline", "branch": "COALESCE(branch, '')", "result": OUTCOME_SQL, "trigger": "reason"}


@dataclass
class Run:
    """One run of one pipeline."""

    id: int
    pipeline: str
    file: str
    reason: str
    branch: str
    commit_sha: str
    status: str
    result: str
    requested_by: str
    created: float
    started: float
    finished: float
    pid: int
    params: dict
    source_dir: str
    resources: dict
    triggered_by: int
    state: dict
    owner: str = ""
    requested_proof: str = ""  # how the requester's identity was proven (identity.py)


BUSY_DEADLINE = 900.0  # seconds a writer keeps retrying a busy database (each try waits busy_timeout first)


def _retry(action):
    """action(), retried with backoff while the database is locked or busy (issue 24 finding 4: under a burst
    of pushes, each hook process waits for its turn instead of losing its run)."""
    deadline = time.monotonic() + BUSY_DEADLINE
    delay = 0.05
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


class Store:
    """Access to runs, records, approvals, logs and artifacts."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "runs.db"
        self.resumable: list[int] = []  # waiting runs whose ManualValidation timed out here (reconcile)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            _retry(lambda: db.execute("PRAGMA journal_mode=WAL"))  # persistent: readers never block the writer
            _retry(lambda: db.executescript(SCHEMA))
            for (table, column), statement in MIGRATIONS.items():
                if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    try:
                        db.execute(statement)
                    except sqlite3.OperationalError:  # another process added it meanwhile
                        pass
        finally:
            db.close()

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            _retry(lambda: db.execute("BEGIN IMMEDIATE"))  # a burst of writers waits its turn, never fails
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # --- runs ---------------------------------------------------------------------------

    def create_run(self, pipeline: str, file: str, reason: str, branch: str, commit: str, requested_by: str,
                   params: dict, source_dir: str, resources: dict | None = None, triggered_by: int = 0) -> int:
        """Queue a run; returns its id (the Build.BuildId)."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (pipeline, file, reason, branch, commit_sha, status, result, requested_by, created,"
                " params, source_dir, resources, triggered_by, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (pipeline, file, reason, branch, commit, "queued", "", requested_by, time.time(),
                 json.dumps(params), source_dir, json.dumps(resources or {}), triggered_by, "{}"))
            return int(cursor.lastrowid)

    def update_run(self, run_id: int, **fields) -> None:
        """Set columns of a run (state, params and resources are stored as JSON); a completed run's
        secret outputs are deleted."""
        if fields.get("status") == "completed":
            self.drop_secrets(run_id)
        for key in ("state", "params", "resources"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        columns = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE runs SET {columns} WHERE id = ?", (*fields.values(), run_id))

    def running_engines(self) -> dict[int, int]:
        """pid of the engine process -> run id, for every run that is running now."""
        with self._db() as db:
            rows = db.execute("SELECT id, pid FROM runs WHERE status = 'running' AND pid IS NOT NULL").fetchall()
        return {int(row["pid"]): int(row["id"]) for row in rows if row["pid"]}

    def start_run(self, run_id: int, pid: int, owner: str, started: float) -> bool:
        """Mark a queued or waiting run running in this process; False when it is not queued or waiting (it
        completed, was canceled, or another process runs it), whatever runs at once."""
        with self._db() as db:
            return db.execute("UPDATE runs SET status = 'running', pid = ?, owner = ?, started = ? "
                              "WHERE id = ? AND status IN ('queued', 'waiting')",
                              (pid, owner, started, run_id)).rowcount == 1

    def get_run(self, run_id: int) -> Run:
        """One run; KeyError if there is none."""
        with self._db() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id}")
        return _run(row)

    def list_runs(self, limit: int = 50) -> list[Run]:
        """Newest first."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_run(row) for row in rows]

    def page_of_runs(self, filters: dict[str, str], page: int, size: int) -> tuple[list[Run], int, int, dict]:
        """(runs newest first matching every given filter of FILTERS, total, the page clamped to 1..pages, the
        values each filter can take): one indexed query, read-only (the Studio's run list)."""
        where = [(f"{FILTERS[name]} = ?", filters[name]) for name in FILTERS if filters.get(name)]
        clause = " AND ".join(w for w, _ in where) or "1 = 1"
        args = [a for _, a in where]
        with self._reading() as db:
            choices = {name: [r[0] for r in db.execute(f"SELECT DISTINCT {column} AS v FROM runs WHERE v != '' "
                                                       "ORDER BY v")] for name, column in FILTERS.items()}
            total = db.execute(f"SELECT COUNT(*) FROM runs WHERE {clause}", args).fetchone()[0]
            page = min(max(page, 1), max(1, -(-total // size)))
            rows = db.execute(f"SELECT * FROM runs WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                              [*args, size, (page - 1) * size]).fetchall()
        return [_run(r) for r in rows], total, page, choices

    def triggered_runs(self, run_id: int) -> list[Run]:
        """The runs run_id triggered, oldest first (read-only)."""
        with self._reading() as db:
            return [_run(r) for r in db.execute("SELECT * FROM runs WHERE triggered_by = ? ORDER BY id", (run_id,))]

    @contextmanager
    def _reading(self):
        """A read-only connection: no write lock, so a page never waits for a writer."""
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    # --- records (stages, jobs, steps) --------------------------------------------------

    def counter(self, run_id: int, prefix: str, seed: int) -> int:
        """Azure's counter(prefix, seed): seed on the pipeline's first run with this prefix, one more on each
        later run; the same value every time within one run (a resumed run reads what it got)."""
        with self._db() as db:
            used = db.execute("SELECT value FROM counter_uses WHERE run_id=? AND prefix=?", (run_id, prefix)).fetchone()
            if used:
                return int(used[0])
            pipeline = db.execute("SELECT pipeline FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            row = db.execute("SELECT value FROM counters WHERE pipeline=? AND prefix=?", (pipeline, prefix)).fetchone()
            value = seed if row is None else int(row[0]) + 1
            db.execute("INSERT OR REPLACE INTO counters (pipeline, prefix, value) VALUES (?, ?, ?)",
                       (pipeline, prefix, value))
            db.execute("INSERT INTO counter_uses (run_id, prefix, value) VALUES (?, ?, ?)", (run_id, prefix, value))
            return value

    def set_record(self, run_id: int, path: str, kind: str, **fields) -> None:
        """Insert or update the record of a stage, job or step."""
        with self._db() as db:
            exists = db.execute("SELECT 1 FROM records WHERE run_id = ? AND path = ?", (run_id, path)).fetchone()
            if exists:
                columns = ", ".join(f"{k} = ?" for k in fields)
                db.execute(f"UPDATE records SET {columns} WHERE run_id = ? AND path = ?",
                           (*fields.values(), run_id, path))
            else:
                position = db.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0]
                fields.setdefault("status", "pending")
                names = ", ".join(["run_id", "path", "kind", "position", *fields])
                marks = ", ".join("?" * (4 + len(fields)))
                db.execute(f"INSERT INTO records ({names}) VALUES ({marks})",
                           (run_id, path, kind, position, *fields.values()))

    def records(self, run_id: int) -> list[dict]:
        """Records of a run in the order they were created."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM records WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        return [dict(row) for row in rows]

    # --- approvals ----------------------------------------------------------------------

    def request_approval(self, run_id: int, stage: str, job: str, environment: str, timeout_s: float,
                         **validation) -> int:
        """A pending approval (reused if one is already pending for this stage, or for this step when
        validation names one); validation: the VALIDATION_FIELDS of a ManualValidation step."""
        unknown = set(validation) - set(VALIDATION_FIELDS)
        if unknown:
            raise ValueError(f"unknown approval fields {sorted(unknown)}")
        with self._db() as db:
            if validation.get("step"):
                row = db.execute("SELECT id FROM approvals WHERE run_id = ? AND step = ? AND status = 'pending'",
                                 (run_id, validation["step"])).fetchone()
            else:
                row = db.execute("SELECT id FROM approvals WHERE run_id = ? AND stage = ? AND status = 'pending'",
                                 (run_id, stage)).fetchone()
            if row:
                return int(row["id"])
            now = time.time()
            names = ["run_id", "stage", "job", "environment", "status", "requested", "timeout_at", *validation]
            cursor = db.execute(f"INSERT INTO approvals ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                (run_id, stage, job, environment, "pending", now, now + timeout_s,
                                 *validation.values()))
            return int(cursor.lastrowid)

    def approvals(self, run_id: int | None = None, status: str | None = None) -> list[dict]:
        """Approvals, optionally of one run and/or one status."""
        query, args = "SELECT * FROM approvals WHERE 1 = 1", []
        if run_id is not None:
            query += " AND run_id = ?"
            args.append(run_id)
        if status:
            query += " AND status = ?"
            args.append(status)
        with self._db() as db:
            return [dict(row) for row in db.execute(query + " ORDER BY id", args).fetchall()]

    def decide(self, approval_id: int, status: str, approver: str, comment: str, proof: str = "") -> bool:
        """Record a decision (approved, rejected, timed out) on a pending approval; False when it was
        decided already (one decision wins, however many are taken at once)."""
        with self._db() as db:
            return db.execute("UPDATE approvals SET status = ?, approver = ?, comment = ?, decided = ?, "
                              "approver_proof = ? WHERE id = ? AND status = 'pending'",
                              (status, approver, comment, time.time(), proof, approval_id)).rowcount == 1

    # --- secret outputs -----------------------------------------------------------------

    def _secrets_path(self, run_id: int) -> Path:
        return self.directory / "secrets" / f"{run_id}.json"

    def save_secrets(self, run_id: int, values: dict[str, str]) -> None:
        """Keep a run's secret outputs (for its resume after an approval) in a file only its owner
        reads, outside runs.db; deleted when the run completes."""
        folder = self.directory / "secrets"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = self._secrets_path(run_id)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(values, file)
        os.replace(temporary, path)

    def load_secrets(self, run_id: int) -> dict[str, str]:
        """A run's secret outputs (empty when it has none)."""
        try:
            return json.loads(self._secrets_path(run_id).read_text())
        except (OSError, ValueError):
            return {}

    def drop_secrets(self, run_id: int) -> None:
        """Delete a run's secret outputs."""
        self._secrets_path(run_id).unlink(missing_ok=True)

    # --- files --------------------------------------------------------------------------

    def log_path(self, run_id: int, name: str) -> Path:
        """Where a record's log goes."""
        path = self.directory / "logs" / str(run_id) / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def artifacts_dir(self, run_id: int) -> Path:
        """Where a run's published artifacts live."""
        return self.directory / "artifacts" / str(run_id)

    def test_results_dir(self, run_id: int) -> Path:
        """Where a run's published test results live (PublishTestResults: a run's tests, not an artifact)."""
        return self.directory / "results" / str(run_id) / "tests"

    def coverage_dir(self, run_id: int) -> Path:
        """Where a run's published code coverage lives (PublishCodeCoverageResults: not an artifact)."""
        return self.directory / "results" / str(run_id) / "coverage"

    def work_dir(self, run_id: int) -> Path:
        """The agent directory of a run (Pipeline.Workspace)."""
        path = self.directory / "work" / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- crash recovery -----------------------------------------------------------------

    def reconcile(self) -> list[int]:
        """End failed, with the reason, the runs whose engine process is gone; time out expired approvals (a
        timed-out ManualValidation leaves its run waiting, listed in `resumable`, to be resumed). Returns the
        changed runs."""
        from ml_service.workspace.owners import describe, owner_is_gone

        changed = []
        with self._db() as db:
            rows = db.execute("SELECT id, pid, owner FROM runs WHERE status = 'running'").fetchall()
        for row in rows:
            gone = owner_is_gone(row["owner"]) if row["owner"] else not _alive(row["pid"])
            if not gone:
                continue
            now = time.time()
            who = describe(row["owner"]) if row["owner"] else f"pid {row['pid']}"
            reason = (f"killed: the engine process that ran it ({who}) ended without finishing it (killed or "
                      f"crashed); its step processes died with it; ended failed at "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))} by pid {os.getpid()}")
            with self._db() as db:
                updated = db.execute("UPDATE runs SET status = 'completed', result = 'failed', finished = ? "
                                     "WHERE id = ? AND status = 'running'", (now, row["id"])).rowcount
                if not updated:
                    continue
                db.execute("UPDATE records SET status = 'completed', result = 'Failed', finished = ?, detail = ? "
                           "WHERE run_id = ? AND status IN ('running', 'pending')", (now, reason, row["id"]))
                position = db.execute("SELECT COUNT(*) FROM records WHERE run_id = ?", (row["id"],)).fetchone()[0]
                db.execute("INSERT OR REPLACE INTO records (run_id, path, kind, name, display, position, status, "
                           "result, finished, detail) VALUES (?, '__killed', 'error', 'killed', 'engine killed', ?, "
                           "'completed', 'Failed', ?, ?)", (row["id"], position, now, reason))
            self.drop_secrets(row["id"])
            changed.append(row["id"])
        for approval in self.approvals(status="pending"):
            if approval["timeout_at"] and approval["timeout_at"] < time.time():
                if approval.get("kind") == "validation":  # the run goes on as onTimeout says (runner/validation.py)
                    if self.decide(approval["id"], "timed out", "", f"timed out: {approval['on_timeout']}"):
                        self.resumable.append(approval["run_id"])
                        changed.append(approval["run_id"])
                    continue
                self.decide(approval["id"], "timed out", "", "approval timed out")
                now = time.time()
                with self._db() as db:
                    db.execute("UPDATE runs SET status = 'completed', result = 'rejected', finished = ? "
                               "WHERE id = ? AND status = 'waiting'", (now, approval["run_id"]))
                    db.execute("UPDATE records SET status = 'completed', result = 'Failed', finished = ?, "
                               "detail = 'approval timed out' WHERE run_id = ? AND status = 'waiting'",
                               (now, approval["run_id"]))
                self.drop_secrets(approval["run_id"])
                changed.append(approval["run_id"])
        return changed


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _run(row) -> Run:
    return Run(id=row["id"], pipeline=row["pipeline"], file=row["file"], reason=row["reason"],
               branch=row["branch"] or "", commit_sha=row["commit_sha"] or "", status=row["status"],
               result=row["result"] or "", requested_by=row["requested_by"] or "", created=row["created"] or 0,
               started=row["started"] or 0, finished=row["finished"] or 0, pid=row["pid"] or 0,
               params=json.loads(row["params"] or "{}"), source_dir=row["source_dir"] or "",
               resources=json.loads(row["resources"] or "{}"), triggered_by=row["triggered_by"] or 0,
               state=json.loads(row["state"] or "{}"), owner=row["owner"] or "",
               requested_proof=row["requested_proof"] or "")
