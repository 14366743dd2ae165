"""The progress view: a live, ticking line on a terminal; plain lines anywhere else."""
import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

from ml_service import live
from ml_service.ci.runner.progress import Progress
from ml_service.live import CLEAR, LiveLine
from tests.conftest import ROOT

WAIT = 30  # seconds before a wait for an event gives up (a failure bound, never an assertion on speed)


class FakeTerminal(io.StringIO):
    """A fake terminal: a StringIO that says it is a TTY."""

    def isatty(self):
        return True


class Clock:
    """Stands in for the module's `time`: the ticker's sleeps are handed out one by one by the test, and the
    clock advances by the interval at each, so what is drawn is decided by events, not by the machine's speed."""

    def __init__(self):
        self.now = 100.0
        self.ticks = threading.Semaphore(0)
        self.asleep = threading.Condition()
        self.sleeps = 0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        with self.asleep:
            self.sleeps += 1
            self.asleep.notify_all()
        if not self.ticks.acquire(timeout=WAIT):  # the test is over and left its ticker (a daemon thread): park it
            threading.Event().wait()  # for good, instead of raising in a thread while another test runs
        self.now += seconds

    def tick(self, count=1):
        """Let the ticker run `count` more rounds and wait until it has finished them."""
        with self.asleep:
            target = self.sleeps + count
            self.ticks.release(count)
            assert self.asleep.wait_for(lambda: self.sleeps >= target, WAIT), "the ticker stopped ticking"


def test_on_a_terminal_the_running_line_ticks_then_gives_way_to_the_result(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(live, "time", clock)
    term = FakeTerminal()
    out = LiveLine(term, interval=0.25)
    out.start(".. train")
    clock.tick(3)  # three rounds of the ticker: three redraws, each with the elapsed time
    out.line("ok train 0.8s")
    text = term.getvalue()
    assert text.count(f"{CLEAR}.. train") == 4  # drawn at start, then redrawn in place at each tick
    assert f"{CLEAR}.. train  0.0s{CLEAR}.. train  0.2s{CLEAR}.. train  0.5s{CLEAR}.. train  0.8s" in text
    assert text.endswith(f"{CLEAR}ok train 0.8s\n")
    clock.tick(2)  # the ticker goes on, but no line is live
    assert term.getvalue() == text  # nothing is drawn once no line is live


def test_stop_clears_the_live_line_and_the_next_line_starts_clean(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(live, "time", clock)
    term = FakeTerminal()
    out = LiveLine(term, interval=0.25)
    out.start(".. lint")
    out.stop()
    assert term.getvalue() == f"{CLEAR}.. lint  0.0s{CLEAR}"  # drawn, then wiped
    out.stop()  # nothing live: nothing more is written
    out.line("ok lint")
    assert term.getvalue() == f"{CLEAR}.. lint  0.0s{CLEAR}ok lint\n"
    clock.tick(2)
    assert term.getvalue().endswith("ok lint\n")  # the ticker draws nothing after stop


def test_off_a_terminal_start_and_stop_write_nothing():
    pipe = io.StringIO()
    out = LiveLine(pipe)
    out.start(".. train")
    out.stop()
    out.line("ok train")
    assert pipe.getvalue() == "ok train\n"


def test_off_a_terminal_only_plain_lines_are_written():
    pipe = io.StringIO()
    progress = Progress(pipe)
    progress("build", {"status": "running", "display": "Build"})
    progress("build/job", {"status": "running", "display": "Job"})
    progress("build/job/step", {"status": "running", "display": "Lint"})
    progress("build/job/step", {"status": "completed", "result": "Succeeded"})
    lines = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue() and "\033" not in pipe.getvalue()
    assert lines[0].split() == ["..", "Build"] and lines[1].split() == ["..", "Job"]
    assert lines[2].split()[:3] == ["ok", "Lint", "Succeeded"] and len(lines) == 3


def test_mlops_ci_run_on_a_real_pseudo_terminal_shows_the_running_step_live(tmp_path):
    pipeline = tmp_path / "slow.yml"
    go = tmp_path / "go"  # the step waits until the test has seen the live line tick, then ends
    pipeline.write_text(f"steps:\n  - script: while [ ! -e {go} ]; do sleep 0.05; done\n"
                        "    displayName: Wait a while\n")
    (tmp_path / "mlops.yml").write_text("models: [{name: m, project: p}]\n")
    env = {**os.environ, "MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": str(tmp_path / "state"),
           "MLOPS_USER": "dev@example.com"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    tick = re.compile(rb"\r\x1b\[K\.\. +Wait a while  (\d+\.\d)s")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not go.exists() and len(tick.findall(b"".join(chunks))) >= 3:
            go.touch()  # the event the step waits for: three redraws seen
        if not select.select([leader], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    go.touch()
    assert proc.wait(60) == 0
    text = b"".join(chunks).decode()
    ticks = [float(t) for t in re.findall(r"\r\x1b\[K\.\. +Wait a while  (\d+\.\d)s", text)]
    assert len(ticks) >= 3 and ticks == sorted(ticks) and ticks[-1] > ticks[0]  # redrawn with its elapsed time
    assert re.search(r"\r\x1b\[Kok +Wait a while  Succeeded", text)
