"""Issue 24 findings 5 and 6 against real processes: a step's output is read in bounded chunks and its log is
capped (the middle elided, said in the log); a secret split between two reads of an over-long line is still
masked; daemons a step starts (setsid, a double fork) end with the job, and a background child holding stdout
does not hold the step up."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci.helpers import make_project, records, run_text

pytestmark = pytest.mark.integration

PEAK = """
import resource, sys
from pathlib import Path
from ml_service.ci.runner import process
command = sys.argv[1]
process.run(["bash", "-c", command], {"PATH": "/usr/bin:/bin"}, Path("."), Path(sys.argv[2]), None,
            lambda text: text, lambda command: None, log_max_bytes=1024 * 1024)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kb(tmp_path: Path, command: str) -> int:
    """The engine's peak resident memory (KB) while a step runs command, in a process of its own."""
    done = subprocess.run([sys.executable, "-c", PEAK, command, str(tmp_path / "step.log")], capture_output=True,
                          text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_output_without_newlines_keeps_the_engine_small_and_the_log_capped(tmp_path):
    baseline = _peak_kb(tmp_path, "echo small")
    (tmp_path / "step.log").unlink()
    big = _peak_kb(tmp_path, "head -c 268435456 /dev/zero | tr '\\0' x; printf 'THE-END'")  # 256 MB, one line
    assert big - baseline < 16 * 1024  # KB: was +800 MB before (the whole line held in memory)
    log = tmp_path / "step.log"
    assert log.stat().st_size < 1024 * 1024 + 4096  # the cap (1 MB here) and the note
    text = log.read_bytes()
    assert text.startswith(b"xxxx") and text.rstrip().endswith(b"THE-END")  # head and newest tail kept
    assert b"elided" in text and not list(tmp_path.glob("step.log.tail*"))  # said in the log; spools removed


SPLIT = """
import os, sys, time
log, secret, max_line = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.stdout.write("x" * max_line + secret[:5])  # one character past the longest line held: written out in pieces
sys.stdout.flush()
deadline = time.monotonic() + 60
while time.monotonic() < deadline and (not os.path.exists(log) or os.path.getsize(log) < max_line - 4096):
    time.sleep(0.05)  # until the engine wrote the first piece: the rest of the secret comes in a later read
sys.stdout.write(secret[5:] + " THE-END\\n")
"""


def test_a_secret_split_between_two_reads_of_an_over_long_line_is_masked(tmp_path):
    from ml_service.ci.runner import process
    from ml_service.ci.runner.masking import Masker

    secret = "s3cr3t-Value-42"
    masker = Masker()
    masker.add(secret)
    log = tmp_path / "step.log"
    done = process.run([sys.executable, "-c", SPLIT, str(log), secret, str(process.MAX_LINE)],
                       {"PATH": os.environ["PATH"]}, tmp_path, log, 300, masker, lambda command: None)
    text = log.read_text()
    assert done.code == 0 and text.rstrip().endswith("THE-END")
    assert secret not in text and secret[5:] not in text  # the whole secret masked, not its halves apart


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))  # a zombie is dead


DAEMONS = r"""
timeoutInMinutes: 3
steps:
- script: |
    setsid sleep 300 > /dev/null 2>&1 < /dev/null &
    echo $! > {pids}/setsid
    python3 - <<'PY'
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open("{pids}/double", "w").write(str(os.getpid()))
            time.sleep(300)
        os._exit(0)
    time.sleep(0.5)
    PY
  displayName: start daemons
- script: |
    (sleep 300; echo never) &
    echo main-done
  displayName: background child holds stdout
"""


def test_daemons_end_with_the_job_and_a_background_child_does_not_hold_the_step(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch)
    pids = tmp_path / "pids"
    pids.mkdir()
    store, run = run_text(settings, DAEMONS.replace("{pids}", str(pids)))
    # the job's 3 minutes would have timed the step out had it waited for its background child's 300 s
    assert records(store, run.id)["background child holds stdout"]["result"] == "Succeeded"
    assert run.result == "succeeded"
    survivors = [int(p.read_text()) for p in pids.iterdir() if _alive(int(p.read_text()))]
    assert len(list(pids.iterdir())) == 2 and survivors == []  # both daemons were started, neither survived


def test_a_steps_log_keeps_output_well_under_the_configured_megabytes_whole(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch, "models:\n  - {project: p, name: m}\nci: {log_max_mb: 1}\n")
    store, run = run_text(settings, "steps:\n  - bash: for i in $(seq 1 2000); do echo \"line $i of output\"; done\n"
                                    "    displayName: talk\n")
    log = Path(records(store, run.id)["talk"]["log"]).read_text()  # ~40 KB, far under the 1 MB cap
    assert run.result == "succeeded" and "line 1 of output" in log and "line 2000 of output" in log
    assert all(f"line {i} of output\n" in log for i in range(1, 2001)) and "elided" not in log
