"""Run by the KServe SDK's own environment (.venv/clients/kserve, environment_setup/clients.sh), not by pytest:
asks a v2 server everything a KServe user would with kserve.InferenceRESTClient and prints the answers as JSON.

    python kserve_infer.py URL MODEL KEY COLUMNS_JSON ROWS_JSON
COLUMNS_JSON maps each input to its v2 datatype; ROWS_JSON is the list of records to score.
"""
import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

NUMPY = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}


def infer_request(model: str, columns: dict, rows: list, binary: bool) -> InferRequest:
    """The request as a KServe user builds it: one InferInput per column, numpy data, outputs asked by name."""
    inputs = []
    for name, datatype in columns.items():
        values = [row[name].encode() if datatype == "BYTES" else row[name] for row in rows]
        tensor = InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(np.array(values, dtype=NUMPY[datatype]), binary_data=binary)
        inputs.append(tensor)
    outputs = [RequestedOutput(name, {"binary_data": binary}) for name in ("predict", "probabilities")]
    return InferRequest(model, inputs, request_id=f"kserve-{binary}", request_outputs=outputs)


async def ask(url: str, model: str, key: str, columns: dict, rows: list) -> dict:
    auth = {"Authorization": f"Bearer {key}"}
    seen = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30)) as client:
        seen["live"] = await client.is_server_live(url)
        seen["ready"] = await client.is_server_ready(url)
        seen["model ready"] = await client.is_model_ready(url, model, headers=auth)
        seen["unknown model ready"] = await client.is_model_ready(url, "no-such-model", headers=auth)
        for binary in (False, True):
            response_headers = {}
            answer = await client.infer(url, infer_request(model, columns, rows, binary), model_name=model,
                                        headers=dict(auth), response_headers=response_headers)
            outputs = {o.name: o for o in answer.outputs}
            seen["binary" if binary else "json"] = {
                "id": answer.id, "model": answer.model_name, "content type": response_headers["content-type"],
                "predict": [v.decode() if isinstance(v, bytes) else v for v in outputs["predict"].as_numpy().tolist()],
                "probabilities": outputs["probabilities"].as_numpy().tolist()}
        try:
            await client.infer(url, infer_request(model, columns, rows, False), model_name=model)
            seen["no key"] = 200
        except httpx.HTTPStatusError as exc:
            seen["no key"] = exc.response.status_code
    return seen


if __name__ == "__main__":
    url, model, key, columns, rows = sys.argv[1:6]
    print(json.dumps(asyncio.run(ask(url, model, key, json.loads(columns), json.loads(rows)))))
