"""FAKE Kubernetes API server behind the `helm` and `kubectl` wrappers in this folder, for tests only.

No API server can run on the machines this project is built on, so only what needs one is faked:
- helm `template`, `lint`, `package`, `version` (and anything else) run the REAL helm ($FAKE_REAL_HELM);
- helm `upgrade --install`, `rollback`, `status`, `get values`, `uninstall` keep releases in $FAKE_STATE (a folder): the
  manifests are rendered by the real `helm template` with the same chart and values, and the exit
  codes and messages are the real helm 4's (taken from its behaviour and its message strings);
- kubectl `cluster-info` answers; `kubectl port-forward svc/NAME PORT:80` serves the real scoring
  service on 127.0.0.1:PORT for the deployed release NAME, with the scoring keys of the fake
  cluster's Secret ($FAKE_SECRET_KEYS) when the deployed manifest turns auth on, as the pod would.
Environment: FAKE_LOG (every call, one a line), FAKE_STATE, FAKE_REAL_HELM, FAKE_HELM_FAIL=upgrade
(every upgrade times out and helm rolls it back; upgrade:NAME only release NAME's), FAKE_SERVICE=broken
(nothing answers), MODEL_DIR.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

VALUE_FLAGS = {"-f", "--values", "--timeout", "--namespace", "-n", "--set", "--kube-context", "--wait"}
NOT_FOUND = "Error: release: not found"


def positional(args: list[str]) -> list[str]:
    """Arguments that are not flags or flag values (`--wait` is taken as a bare flag)."""
    found, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS - {"--wait"} and "=" not in arg
        else:
            found.append(arg)
    return found


def releases() -> Path:
    path = Path(os.environ["FAKE_STATE"]) / "releases"
    path.mkdir(parents=True, exist_ok=True)
    return path


def history(name: str) -> list[dict]:
    path = releases() / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else []


def save(name: str, revisions: list[dict]) -> None:
    (releases() / f"{name}.json").write_text(json.dumps(revisions, indent=1))


def merged(base: dict, extra: dict) -> dict:
    """Values files merged as helm merges them: mappings deeply, anything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def add_revision(name: str, manifest: str, description: str, values: dict | None = None) -> dict:
    revisions = history(name)
    for revision in revisions:
        revision["status"] = "superseded"
    revision = {"revision": len(revisions) + 1, "status": "deployed", "manifest": manifest, "values": values or {},
                "description": description, "updated": datetime.datetime.now().astimezone().isoformat()}
    save(name, revisions + [revision])
    return revision


def show_status(name: str, revision: dict) -> None:
    print(f"NAME: {name}\nLAST DEPLOYED: {revision['updated']}\nNAMESPACE: default\nSTATUS: {revision['status']}\n"
          f"REVISION: {revision['revision']}\nDESCRIPTION: {revision['description']}")


def helm(args: list[str]) -> int:
    command = args[0] if args else ""
    if command not in ("upgrade", "rollback", "status", "get", "uninstall"):
        return subprocess.run([os.environ["FAKE_REAL_HELM"], *args]).returncode
    if command == "get":  # `helm get values NAME -o yaml`: the user-supplied values of the deployed revision
        args = args[1:]
    name = positional(args[1:])[0]
    if command in ("get", "uninstall") and not history(name):
        print(NOT_FOUND, file=sys.stderr)
        return 1
    if command == "get":
        print(yaml.safe_dump(history(name)[-1].get("values") or {}), end="")
        return 0
    if command == "uninstall":
        (releases() / f"{name}.json").unlink()
        print(f'release "{name}" uninstalled')
        return 0
    if command == "status":
        revisions = history(name)
        if not revisions:
            print(NOT_FOUND, file=sys.stderr)
            return 1
        show_status(name, revisions[-1])
        return 0
    if command == "rollback":
        return rollback(name, positional(args[1:])[1:])
    return upgrade(name, args[1:])


def upgrade(name: str, args: list[str]) -> int:
    chart = positional(args)[1]
    values = [arg for flag, arg in zip(args, args[1:]) if flag in ("-f", "--values")]
    rendered = subprocess.run([os.environ["FAKE_REAL_HELM"], "template", name, chart,
                               *[a for v in values for a in ("-f", v)]], capture_output=True, text=True)
    installing = not history(name)
    failed = "INSTALLATION FAILED" if installing else "UPGRADE FAILED"
    if rendered.returncode != 0:
        print(rendered.stderr.replace("Error: ", f"Error: {failed}: ", 1), end="", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_HELM_FAIL") in ("upgrade", f"upgrade:{name}"):
        undone = "uninstalled" if installing else "rolled back"
        print(f"Error: {failed}: release {name} failed, and has been {undone} due to rollback-on-failure being "
              "set: context deadline exceeded", file=sys.stderr)
        return 1
    if installing:
        print(f'Release "{name}" does not exist. Installing it now.')
    supplied: dict = {}
    for path in values:
        supplied = merged(supplied, yaml.safe_load(Path(path).read_text()) or {})
    revision = add_revision(name, rendered.stdout, "Install complete" if installing else "Upgrade complete", supplied)
    if not installing:
        print(f'Release "{name}" has been upgraded. Happy Helming!')
    show_status(name, revision)
    return 0


def rollback(name: str, wanted: list[str]) -> int:
    revisions = history(name)
    if not revisions:
        print(NOT_FOUND, file=sys.stderr)
        return 1
    target = int(wanted[0]) if wanted else 0
    number = target or revisions[-1]["revision"] - 1
    previous = [r for r in revisions if r["revision"] == number]
    if not previous:
        print(f"Error: release has no {target or number} version", file=sys.stderr)
        return 1
    add_revision(name, previous[0]["manifest"], f"Rollback to {number}", previous[0].get("values"))
    print("Rollback was a success! Happy Helming!")
    return 0


def deployed_pod_env(service: str) -> dict[str, str]:
    """Environment of the pods behind Service `service` in its release's deployed revision, secrets resolved."""
    revisions = history(service)
    if not revisions:
        raise SystemExit(f'Error from server (NotFound): services "{service}" not found')
    objects = [o for o in yaml.safe_load_all(revisions[-1]["manifest"]) if o]
    container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = os.environ.get("FAKE_SECRET_KEYS", "")
    return env


def kubectl(args: list[str]) -> int:
    command = args[0] if args else ""
    if command == "cluster-info":
        print("Kubernetes control plane is running at https://127.0.0.1:6443 (FAKE)")
        return 0
    if command == "port-forward":
        service = args[1].split("/", 1)[1]
        port = args[2].split(":", 1)[0]
        pod = deployed_pod_env(service)
        if os.environ.get("FAKE_SERVICE") == "broken":
            os.execvp("sleep", ["sleep", "300"])
        env = {**os.environ, "MLOPS_SCORING_KEYS": pod.get("MLOPS_SCORING_KEYS", ""),
               "MLOPS_MODEL_NAME": pod.get("MLOPS_MODEL_NAME", ""),
               "MLOPS_MODEL_VERSION": pod.get("MLOPS_MODEL_VERSION", "")}
        os.execve(sys.executable, [sys.executable, "-m", "ml_service.serving", "--port", port], env)
    print(f"FAKE kubectl: {command!r} is not faked", file=sys.stderr)
    return 1


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(f"{tool} {' '.join(args)}\n")
    return helm(args) if tool == "helm" else kubectl(args)


if __name__ == "__main__":
    sys.exit(main())
