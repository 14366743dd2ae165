"""Step functions used by integration-test pipelines (imported by the step host process)."""
import os
import signal
import subprocess
import time


def write_output(inputs, params, output_dir, context):
    (output_dir / "out.txt").write_text("ok")
    return {"metrics": {"value": 1.0}, "outcome": "wrote output"}


def kill_self(inputs, params, output_dir, context):
    print("about to be killed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def spawn_and_hang(inputs, params, output_dir, context):
    child = subprocess.Popen(["sleep", "300"])
    with open(params["pid_file"], "w") as handle:
        handle.write(str(child.pid))
    time.sleep(300)


def raise_error(inputs, params, output_dir, context):
    raise ValueError("the step found something wrong")


def report_parent(inputs, params, output_dir, context):
    (output_dir / "ppid").write_text(str(os.getppid()))
    return {"values": {"preloaded": "json" in __import__("sys").modules}}


def report_platform(inputs, params, output_dir, context):
    import platform

    os_release = open("/etc/os-release").read()
    pretty = next(line.split("=", 1)[1].strip('"') for line in os_release.splitlines() if line.startswith("PRETTY"))
    (output_dir / "platform.txt").write_text(f"{pretty}|{platform.python_version()}|{os.getuid()}")
    return {"values": {"ok": True}}


def read_platform(inputs, params, output_dir, context):
    return {"outcome": "platform " + (inputs["previous"] / "platform.txt").read_text()}
