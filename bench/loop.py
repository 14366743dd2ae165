"""The daily loop, timed (a benchmark, not a test; issue 25): for the commit before a change and for the
change itself, measured in the same run and interleaved, each from its own fresh clone on branch main:

  fresh     fresh clone (Docker engine and base image present) -> `make run` (ends with QA live and the
            production approval waiting; includes `make install`)
  again     `make run` again with nothing changed
  model     `make run` after a one-line change to the default model's training code
  platform  `make run` after a one-line change under ml_service/
  test      `make test` (only with --with-test: about 10-20 minutes a commit)
  image     where a first scoring image build goes (once, in the change's clone, after `fresh`): the wheels
            downloaded into an empty folder (resolution and download), then `docker build --no-cache` of the
            build context `make run` assembled, timed per Dockerfile step
  base      the offline base image built from nothing under a bench tag (once; the commits share the script)

Each line gives the wall time, the exit code and the 1-minute load average at its start and end (the
machine may be shared: a high load says the numbers are slow for that reason). The QA containers the clones
started are removed at the end; the clones are kept under --work for a look (delete them yourself).

Usage: python bench/loop.py [--before REV] [--after REV] [--work DIR] [--with-test] [--no-base]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_CHANGE = ("diabetes_regression/training/train.py", "\n# bench/loop.py: a one-line change to the training code\n")
PLATFORM_CHANGE = ("ml_service/__init__.py", "# bench/loop.py: a one-line change under ml_service/\n")


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def clean_env() -> dict[str, str]:
    """The environment of a new user's shell: no project selection, no virtual environment of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "COV_", "COVERAGE_"))
           and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.endswith(("/.venv/bin", "/venv/bin")))
    return env


def timed(argv: list[str], cwd: Path, log: Path, timeout: float) -> dict:
    """Run argv in cwd (output to log): seconds, exit code, load at start and end, the `time:` line if any."""
    start_load, started = load(), time.monotonic()
    with open(log, "w") as out:
        try:
            code = subprocess.run(argv, cwd=cwd, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    took = time.monotonic() - started
    lines = log.read_text(errors="replace").splitlines()
    breakdown = next((line for line in reversed(lines) if line.startswith("time: ")), "")
    return {"seconds": took, "code": code, "load": (start_load, load()), "breakdown": breakdown}


def clone(rev: str, dest: Path) -> None:
    """A fresh clone of this repository at rev, on a branch named main (the pipelines' triggers name main)."""
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "-B", "main", rev], check=True)


def append(repo: Path, change: tuple[str, str]) -> None:
    """Make a one-line change (left uncommitted: `make run` counts it)."""
    path = repo / change[0]
    path.write_text(path.read_text() + change[1])


def remove_qa(repo: Path) -> int:
    """Remove the QA containers of the clone's workspace; returns how many."""
    code = ("from ml_service.config import load_settings; from ml_service.deploy.qa import workspace_label; "
            "print(workspace_label(load_settings()))")
    python = repo / ".venv" / "bin" / "python"
    if not python.exists():
        return 0
    label = subprocess.run([str(python), "-c", code], cwd=repo, env=clean_env(), capture_output=True,
                           text=True).stdout.strip()
    if not label:
        return 0
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=mlops.workspace={label}"], capture_output=True,
                         text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    return len(ids)


def image_steps(repo: Path, logs: Path) -> None:
    """Time a first scoring image build in parts: the wheels, then each Dockerfile step without the cache."""
    contexts = sorted((repo / ".mlops" / "build").glob("*"), key=lambda p: p.stat().st_mtime)
    if not contexts:
        print("image     no build context under .mlops/build (did `make run` release?)", flush=True)
        return
    context = contexts[-1]
    wheels = logs / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    python = repo / ".venv" / "bin" / "python"
    result = timed([str(python), "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", str(wheels), "-r",
                    str(context / "wheelhouse" / "requirements.txt")], repo, logs / "image-wheels.log", 1800)
    size = sum(f.stat().st_size for f in wheels.glob("*")) / 1e6
    show("image", "wheels", {**result, "breakdown": f"{len(list(wheels.glob('*')))} wheels, {size:.0f} MB"})
    tag = f"mlops-bench/image:{os.getpid()}"
    started, last, step = time.monotonic(), time.monotonic(), "start"
    times: list[tuple[str, float]] = []
    with subprocess.Popen(["docker", "build", "--no-cache", "-t", tag, str(context)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as build:
        for line in build.stdout:
            if line.startswith("Step "):
                now = time.monotonic()
                times.append((step, now - last))
                step, last = line.split(":", 1)[1].strip()[:60], now
        code = build.wait()
    times.append((step, time.monotonic() - last))
    print(f"image     build   {time.monotonic() - started:8.1f} s  exit {code} (docker build --no-cache of "
          f"{context.name}; load {load():.2f})", flush=True)
    for name, took in sorted(times, key=lambda item: -item[1])[:6]:
        print(f"            {took:7.1f} s  {name}", flush=True)
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def show(name: str, label: str, result: dict) -> None:
    print(f"{name:<9} {label:<7} {result['seconds']:8.1f} s  exit {result['code']!s:<7} load "
          f"{result['load'][0]:5.2f} -> {result['load'][1]:5.2f}  {result['breakdown']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios for both commits, interleaved, and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="", help="the commit before the change (default: the merge base with "
                                                     "main, else HEAD~1)")
    parser.add_argument("--after", default="HEAD", help="the change (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-loop"), help="where the clones go")
    parser.add_argument("--with-test", action="store_true", help="also time `make test` in each clone")
    parser.add_argument("--no-base", action="store_true", help="skip building the base image from nothing")
    parser.add_argument("--no-image", action="store_true", help="skip timing a first scoring image build in parts")
    parser.add_argument("--only", nargs="*", default=None,
                        help="only these scenarios besides fresh (again model platform test image base)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a step may take (default: %(default)s)")
    args = parser.parse_args(argv)

    def rev_parse(rev: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], capture_output=True, text=True,
                              check=True).stdout.strip()
    after = rev_parse(args.after)
    before = args.before or subprocess.run(["git", "-C", str(ROOT), "merge-base", "main", after],
                                           capture_output=True, text=True).stdout.strip()
    if not before or before == after:
        before = rev_parse(f"{after}~1")
    before = rev_parse(before)
    commits = {"before": before, "after": after}
    print(f"bench/loop.py: before {before[:10]}, after {after[:10]}; {os.cpu_count()} cores, load {load():.2f}; "
          f"clones under {args.work}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    repos = {label: args.work / label for label in commits}
    logs = args.work / "logs"
    logs.mkdir(exist_ok=True)
    for label, rev in commits.items():
        clone(rev, repos[label])
    steps = [("fresh", None, ["make", "run"]), ("again", None, ["make", "run"]),
             ("model", MODEL_CHANGE, ["make", "run"]), ("platform", PLATFORM_CHANGE, ["make", "run"])]
    if args.with_test:
        steps.append(("test", None, ["make", "test"]))
    try:
        for name, change, command in steps:
            # fresh: the change goes first, so it pays the cold caches (Docker layers, package downloads)
            for label in (["after", "before"] if name == "fresh" else ["before", "after"]):
                if change:
                    append(repos[label], change)
                show(name, label, timed(command, repos[label], logs / f"{name}-{label}.log", args.timeout))
            if name == "fresh" and not args.no_image and (args.only is None or "image" in args.only):
                image_steps(repos["after"], logs)
        if not args.no_base and (args.only is None or "base" in args.only):
            tag = f"mlops-python:bench-{os.getpid()}"
            result = timed(["bash", "environment_setup/base_image.sh", tag], repos["after"], logs / "base.log",
                           args.timeout)
            show("base", "-", result)
            subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    finally:
        removed = sum(remove_qa(repo) for repo in repos.values())
        print(f"removed {removed} QA container(s); logs in {logs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
