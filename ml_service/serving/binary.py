"""The binary tensor data extension of the Open Inference Protocol (Triton's, used by tritonclient).

A request with an `Inference-Header-Content-Length: N` header carries N bytes of JSON, then the raw data of
each input whose `parameters.binary_data_size` is set, in input order: little-endian numbers, one byte a
BOOL, and for BYTES a 4-byte little-endian length before each element. A response puts the data of outputs
asked for in binary (`parameters.binary_data` on the output, or `binary_data_output` on the request) after
its JSON the same way, and says the JSON's length in the same header.
"""
from __future__ import annotations

import json
import struct

from ml_service.serving.errors import HTTPError

NUMPY = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4", "INT16": "<i2",
         "INT8": "i1", "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "u1", "BOOL": "?"}
HEADER = b"inference-header-content-length"


def _json(text: bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"invalid JSON in the inference header: {exc}") from None
    except RecursionError:
        raise HTTPError(400, "invalid JSON: nested too deeply") from None


def _bytes_elements(raw: bytes, k: int) -> list:
    values, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise HTTPError(400, f"inputs[{k}]: BYTES data ends inside an element's length")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise HTTPError(400, f"inputs[{k}]: a BYTES element runs past the input's binary_data_size")
        values.append(raw[at:at + size].decode("utf-8", "replace"))
        at += size
    return values


def _decode(raw: bytes, datatype: object, k: int) -> list:
    if datatype == "BYTES":
        return _bytes_elements(raw, k)
    if datatype not in NUMPY:
        raise HTTPError(422, f"inputs[{k}].datatype {datatype!r} is not a datatype of the binary extension")
    import numpy as np

    dtype = np.dtype(NUMPY[datatype])
    if len(raw) % dtype.itemsize:
        raise HTTPError(400, f"inputs[{k}]: {len(raw)} bytes are not a whole number of {datatype} values")
    return np.frombuffer(raw, dtype=dtype).tolist()


def split_request(body: bytes, header: bytes) -> dict:
    """The inference request of a binary body, with each binary input's values in its "data" (flat)."""
    if not header.strip().isdigit() or int(header) > len(body):
        raise HTTPError(400, f"Inference-Header-Content-Length {header[:20]!r} does not fit a body of "
                             f"{len(body)} bytes")
    size = int(header)
    payload = _json(body[:size])
    at = size
    if isinstance(payload, dict) and isinstance(payload.get("inputs"), list):
        for k, tensor in enumerate(payload["inputs"]):
            parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
            length = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
            if length is None:
                continue
            if type(length) is not int or length < 0 or at + length > len(body):
                raise HTTPError(400, f"inputs[{k}].parameters.binary_data_size {length!r} does not fit the body")
            tensor["data"] = _decode(body[at:at + length], tensor.get("datatype"), k)
            at += length
    if at != len(body):
        raise HTTPError(400, f"{len(body) - at} bytes after the last binary input")
    return payload


def _encode(output: dict) -> bytes:
    data, datatype = output["data"], output["datatype"]
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            parts += [struct.pack("<I", len(raw)), raw]
        return b"".join(parts)
    import numpy as np

    return np.asarray(data, dtype=NUMPY[datatype]).tobytes()


def binary_outputs(payload: dict) -> set[str] | bool:
    """The outputs a request wants in binary: True for all, else the set of names."""
    parameters = payload.get("parameters")
    if isinstance(parameters, dict) and parameters.get("binary_data_output") is True:
        return True
    return {o["name"] for o in payload.get("outputs") or []
            if isinstance(o, dict) and isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")}


def join_response(response: dict, binary: set[str] | bool) -> tuple[bytes, int | None]:
    """(body, JSON length) of a response with the binary outputs' data after the JSON (length None: plain JSON)."""
    raw = []
    for output in response["outputs"]:
        if binary is True or output["name"] in binary:
            data = _encode(output)
            del output["data"]
            output["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
    text = json.dumps(response).encode()
    if not raw:
        return text, None
    return text + b"".join(raw), len(text)
