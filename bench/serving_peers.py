"""The serving runtimes teams pick instead of ours, for bench/serving.py: how to start each on the same model.

Seldon MLServer with mlserver-sklearn, KServe's Python model server (bench/peers/kserve_server.py) and BentoML
(bench/peers/bentoml_service.py), each from its own pinned environment (bench/peers/requirements-<peer>.txt,
built by bench/peers/build.sh; they pin conflicting packages, so none of them is in the project's own
environment), each one worker, on 127.0.0.1 only, loading the same pickled scikit-learn model as ours. Each
peer answers the Open Inference Protocol v2 with one [rows, features] FP64 input (the request every v2 client
can send) and its own native route; the request bodies carry the same row.
"""
from __future__ import annotations

import json
from pathlib import Path

PEERS = ("mlserver", "kserve", "bentoml")
HERE = Path(__file__).resolve().parent / "peers"
DEFAULT_VENVS = HERE.parents[1] / ".venv" / "peers"  # where bench/peers/build.sh puts them by default
PEER_MODEL = "diabetes"  # the name each peer serves the model under


def v2_bodies(columns: list[str], row: list) -> dict[str, str]:
    """Open Inference Protocol v2 bodies for one row: one [1, features] tensor, and one [1] input a column."""
    tensor = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}
    by_column = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [v]} for c, v in zip(columns, row)]}
    return {"tensor": json.dumps(tensor), "columns": json.dumps(by_column)}


def peer_servers(venvs: Path, workdir: Path, model_pkl: Path, columns: list[str], row: list) -> dict[str, dict]:
    """Each peer whose environment is built: {name: {argv, env, cwd, ready, routes}}; routes maps a label to
    (path, body). argv holds PORT where the port goes; env is added to a copy of this environment without
    PYTHONPATH (the peers import nothing of ours)."""
    v2 = v2_bodies(columns, row)
    infer = f"/v2/models/{PEER_MODEL}/infer"
    pandas = json.dumps({"parameters": {"content_type": "pd"}, **json.loads(v2["columns"])})
    servers = {}
    python = {peer: venvs / peer / "bin" / "python" for peer in PEERS}
    if python["mlserver"].exists():
        folder = workdir / "mlserver"
        (folder / PEER_MODEL).mkdir(parents=True, exist_ok=True)
        (folder / PEER_MODEL / "model-settings.json").write_text(json.dumps({
            "name": PEER_MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model_pkl), "version": "1"}}))
        servers["mlserver"] = {
            # settings.json is written with the ports when it starts (see settings_file); parallel_workers 0:
            # inference in the server's own process, one worker as for the others; debug off as in production
            "argv": [str(venvs / "mlserver" / "bin" / "mlserver"), "start", "."], "env": {}, "cwd": folder,
            "settings": lambda port, ports: {"host": "127.0.0.1", "http_port": port, "grpc_port": ports[0],
                                             "metrics_port": ports[1], "parallel_workers": 0, "debug": False},
            "ready": "/v2/health/ready",
            # MLServer speaks v2 only; its way for a typed table is an input a column decoded by its pandas codec
            "routes": {"v2": (infer, v2["tensor"]), "native (v2, an input a column, pandas codec)": (infer, pandas)}}
    if python["kserve"].exists():
        servers["kserve"] = {
            "argv": [str(python["kserve"]), str(HERE / "kserve_server.py"), str(model_pkl), PEER_MODEL, "PORT"],
            "env": {}, "cwd": workdir, "ready": "/v2/health/ready",
            "routes": {"v2": (infer, v2["tensor"]),
                       "native (v1 :predict)": (f"/v1/models/{PEER_MODEL}:predict", json.dumps({"instances": [row]}))}}
    if python["bentoml"].exists():
        servers["bentoml"] = {
            "argv": [str(venvs / "bentoml" / "bin" / "bentoml"), "serve", "bentoml_service:Diabetes",
                     "--working-dir", str(HERE), "--host", "127.0.0.1", "--port", "PORT"],
            "env": {"MODEL_PKL": str(model_pkl), "MODEL_NAME": PEER_MODEL, "BENTOML_DO_NOT_TRACK": "true",
                    "BENTOML_HOME": str(workdir / "bentoml-home")},
            "cwd": workdir, "ready": "/readyz",
            "routes": {"v2": (infer, v2["tensor"]), "native (/predict)": ("/predict", json.dumps({"rows": [row]}))}}
    return servers


def versions(venvs: Path) -> dict[str, str]:
    """The peer package's pinned version in each built environment."""
    found = {}
    for peer in PEERS:
        pins = HERE / f"requirements-{peer}.txt"
        if (venvs / peer / "bin" / "python").exists() and pins.exists():
            found[peer] = next((line.split("==")[1] for line in pins.read_text().splitlines()
                                if line.lower().startswith(f"{peer}==")), "?")
    return found
