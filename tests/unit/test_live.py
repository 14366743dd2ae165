"""The progress view: a live, ticking line on a terminal; plain lines anywhere else."""
import io
import os
import pty
import re
import subprocess
import sys
import time

from ml_service.ci.commands import Progress
from ml_service.live import CLEAR, LiveLine
from tests.conftest import ROOT


class FakeTerminal(io.StringIO):
    """A fake terminal: a StringIO that says it is a TTY."""

    def isatty(self):
        return True


def test_on_a_terminal_the_running_line_ticks_then_gives_way_to_the_result():
    term = FakeTerminal()
    out = LiveLine(term, interval=0.02)
    out.start(".. train")
    time.sleep(0.2)
    out.line("ok train 0.2s")
    text = term.getvalue()
    assert text.count(f"{CLEAR}.. train") >= 3  # redrawn in place while it runs
    assert text.endswith(f"{CLEAR}ok train 0.2s\n")
    time.sleep(0.1)
    assert term.getvalue() == text  # nothing is drawn once no line is live


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
    pipeline.write_text("steps:\n  - script: sleep 1.5\n    displayName: Wait a while\n")
    (tmp_path / "mlops.yml").write_text("models: [{name: m, project: p}]\n")
    env = {**os.environ, "MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": str(tmp_path / "state"),
           "MLOPS_USER": "dev@example.com"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(60) == 0
    text = b"".join(chunks).decode()
    ticks = re.findall(r"\r\x1b\[K\.\. +Wait a while  (\d+\.\d)s", text)
    assert len(ticks) >= 3 and float(ticks[-1]) >= 1.0  # the live line, redrawn with its elapsed time
    assert re.search(r"\r\x1b\[Kok +Wait a while  Succeeded", text)
