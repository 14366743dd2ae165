"""The Open Inference Protocol v2 view of a model: metadata, request tensors to rows, predictions to outputs."""
from __future__ import annotations

import json
from operator import itemgetter

from ml_service.serving import jsoncodec, schema
from ml_service.serving.errors import HTTPError

V2_NUMBERS = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}
V2_DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
                "string": "BYTES", "datetime": "BYTES", "binary": "BYTES"}
_FIELDS = itemgetter("name", "datatype", "shape", "data")  # of one input tensor
NUMBER_TYPES = {int, float}  # predictions sent as FP64


def _shape_ok(shape: object, rank: int) -> bool:
    return isinstance(shape, list) and len(shape) == rank and all(type(d) is int and d >= 0 for d in shape)


class V2:
    """The Open Inference Protocol view of a model: its metadata, request tensors to rows, predictions to outputs.

    A model with named columns takes one input per column ([rows] or [rows, 1]; BYTES for strings, BOOL for
    booleans) or, when every column is a number, one [rows, columns] tensor; an untyped model takes the tensor.
    """

    def __init__(self, model_schema: schema.Schema, name: str, version: str, platform: str, datatype: str,
                 classes: list | None):
        self.schema = model_schema
        self.name, self.version = name, version
        if classes and all(isinstance(c, str) for c in classes):
            datatype = "BYTES"  # labels are the classes
        self.outputs = [{"name": "predict", "datatype": datatype, "shape": [-1]}]
        if classes:
            self.outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]})
        if model_schema.typed:
            inputs = [{"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1]} for c in model_schema.columns]
        else:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, model_schema.width or -1]}]
        self.metadata = {"name": name, "versions": [version], "platform": platform, "inputs": inputs,
                         "outputs": self.outputs}
        # a response's JSON up to its id, as json.dumps writes it (see response_json)
        self._head = f'{{"model_name": {jsoncodec.string(name)}, "model_version": {jsoncodec.string(version)}, "id": '
        # the request every client of a typed model sends: one [rows] input a column (see _every_column)
        self._positions = {c.name: j for j, c in enumerate(model_schema.columns)}
        self._allowed = [V2_NUMBERS if V2_DATATYPES[c.type] in V2_NUMBERS else {V2_DATATYPES[c.type]}
                         for c in model_schema.columns]
        self._numeric = model_schema.numeric  # a [rows, columns] tensor can carry every column

    def rows(self, payload: object) -> tuple[list, str]:
        """The rows of an inference request, and how errors name them."""
        return self.fast_rows(payload) or self.general_rows(payload)

    def fast_rows(self, payload: object) -> tuple[list, str] | None:
        """rows() of the two requests clients send (one [rows] input for each column; one [rows, columns] tensor)
        in one pass with no error to word; None for anything else, which general_rows answers with its errors."""
        inputs = payload.get("inputs") if type(payload) is dict else None
        if type(inputs) is not list or not inputs:
            return None
        if len(inputs) == len(self._allowed):
            rows = self._every_column(inputs)
            if rows is not None:
                return rows, "row"
        if len(inputs) == 1 and self._numeric:
            rows = self._one_tensor(inputs[0])
            if rows is not None:
                return rows, "inputs[0].data"
        return None

    def general_rows(self, payload: object) -> tuple[list, str]:
        """rows() of any request, checking each part in turn: a 422 naming the first problem."""
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
            raise HTTPError(422, 'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
        inputs = payload["inputs"]
        for k, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                raise HTTPError(422, f"inputs[{k}] must be an object")
            missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
            if missing:
                raise HTTPError(422, f"inputs[{k}] is missing {', '.join(missing)}")
            for key in ("name", "datatype"):
                if not isinstance(tensor[key], str):
                    raise HTTPError(422, f"inputs[{k}].{key} must be a string, got {type(tensor[key]).__name__}")
        columns = self._positions  # the column names
        if any(t["name"] in columns for t in inputs):
            return self._column_rows(inputs), "row"
        if len(inputs) != 1:
            if self.schema.typed:
                raise HTTPError(422, f"unknown inputs {', '.join(repr(t['name']) for t in inputs)}: this model "
                                     f"takes one input per column ({', '.join(self.schema.names)})")
            raise HTTPError(422, f"this model takes one input tensor, got {len(inputs)}")
        tensor = inputs[0]
        if tensor["datatype"] not in V2_NUMBERS:
            raise HTTPError(422, f"inputs[0].datatype {tensor['datatype']!r} is not numeric")
        if not self.schema.numeric:
            text = [c.name for c in self.schema.columns if c.type not in schema.NUMERIC]
            raise HTTPError(422, f"inputs[0] {tensor['name']!r} is not a column of this model, and a 2-D tensor "
                                 f"cannot carry its non-numeric columns ({', '.join(text)}): send one input a column")
        return _matrix(tensor), "inputs[0].data"

    def _every_column(self, inputs: list) -> list | None:
        """The rows of a request with one valid [rows] input for each column, flat data, in any order; None for
        anything else, which the general path (rows) then answers, with its own errors. One pass over the
        inputs: what the general path returns for such a request, at about a third of its cost (a missing
        key, an unhashable name or a shape of another rank ends the pass as an exception: free when none)."""
        positions, allowed = self._positions, self._allowed
        columns: list = [None] * len(allowed)
        n_rows = -1
        try:
            for name, datatype, shape, data in map(_FIELDS, inputs):  # TypeError for an input not an object
                j = positions[name]
                if columns[j] is not None or datatype not in allowed[j] or type(shape) is not list \
                        or type(data) is not list:
                    return None
                size, = shape
                if type(size) is not int or size != len(data) or (data and type(data[0]) is list):
                    return None
                if n_rows != size:
                    if n_rows >= 0:
                        return None
                    n_rows = size
                columns[j] = data
        except (KeyError, TypeError, ValueError):
            return None
        return list(map(list, zip(*columns)))

    def _one_tensor(self, tensor: object) -> list | None:
        """The rows of one numeric [rows, columns] input that names no column, data flat or nested, as _matrix
        gives them; None for anything else."""
        try:
            name, datatype, shape, data = _FIELDS(tensor)
            n_rows, width = shape
        except (KeyError, TypeError, ValueError):
            return None
        if type(name) is not str or type(datatype) is not str or name in self._positions \
                or datatype not in V2_NUMBERS or type(shape) is not list or type(n_rows) is not int \
                or type(width) is not int or n_rows < 0 or width < 0 or type(data) is not list:
            return None
        if not data or type(data[0]) is list:  # nested, or empty: the rows as sent
            return data if len(data) == n_rows else None
        if len(data) != n_rows * width:
            return None
        return [data[i * width:(i + 1) * width] for i in range(n_rows)]

    def _column_rows(self, inputs: list) -> list:
        index = {c.name: c for c in self.schema.columns}
        unknown = [repr(t["name"]) for t in inputs if t["name"] not in index]
        if unknown:
            raise HTTPError(422, f"unknown input(s) {', '.join(unknown)}; the model's columns are "
                                 f"{', '.join(self.schema.names)}")
        values, n_rows = {}, None
        for k, tensor in enumerate(inputs):
            name, column = tensor["name"], index[tensor["name"]]
            if name in values:
                raise HTTPError(422, f"inputs[{k}]: column {name!r} is sent twice")
            expected = V2_DATATYPES[column.type]
            allowed = V2_NUMBERS if expected in V2_NUMBERS else {expected}
            if tensor["datatype"] not in allowed:
                raise HTTPError(422, f"inputs[{k}] ({name!r}) has datatype {tensor['datatype']!r}; the column is "
                                     f"{column.type}: send {expected}")
            values[name] = _column(tensor, k)
            if n_rows is None:
                n_rows = len(values[name])
            elif len(values[name]) != n_rows:
                raise HTTPError(422, f"inputs[{k}] ({name!r}) has {len(values[name])} rows; "
                                     f"inputs[0] has {n_rows}")
        missing = [repr(c.name) for c in self.schema.columns if c.required and c.name not in values]
        if missing:
            raise HTTPError(422, f"no input for required column(s) {', '.join(missing)}")
        empty = [None] * n_rows
        data = [values.get(c.name, empty) for c in self.schema.columns]
        return [list(row) for row in zip(*data)]

    def requested_outputs(self, payload: dict) -> list[str] | None:
        """The output names a request asks for (None: it names none, so all); 422 for unknown ones."""
        requested = payload.get("outputs")
        if requested is None:
            return None
        if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                      for o in requested):
            raise HTTPError(422, 'outputs must be a list of {"name": ...}')
        known = [o["name"] for o in self.outputs]
        unknown = [repr(o["name"]) for o in requested if o["name"] not in known]
        if unknown:
            raise HTTPError(422, f"unknown output(s) {', '.join(unknown)}; this model returns {', '.join(known)}")
        return [o["name"] for o in requested]

    def response_json(self, request_id: str, outputs: list[dict] | str) -> bytes:
        """The body of a plain JSON inference response: json.dumps of {"model_name", "model_version", "id",
        "outputs"} byte for byte, its constant head written once (outputs: the tensors, or their JSON text)."""
        if type(outputs) is not str:
            outputs = jsoncodec.dumps(outputs)
        return f'{self._head}{jsoncodec.string(request_id)}, "outputs": {outputs}}}'.encode()

    def response_body(self, request_id: str, prediction: dict, encoded: str) -> bytes:
        """The JSON response to a request that names no outputs: response_json(request_id, outputs_of(prediction,
        None)), written in one step from the predictions as already encoded (compact: a number holds no comma)
        when they are one FP64 tensor (numbers, no probabilities)."""
        values = prediction["result"]
        if len(prediction) != 1 or not NUMBER_TYPES.issuperset(map(type, values)):
            return self.response_json(request_id, self.outputs_of(prediction, None))
        return (f'{self._head}{jsoncodec.string(request_id)}, "outputs": [{{"name": "predict", "datatype": "FP64", '
                f'"shape": [{len(values)}], "data": {encoded.replace(",", ", ")}}}]}}').encode()

    def outputs_of(self, prediction: dict, wanted: list[str] | None) -> list[dict]:
        """The response's output tensors for a prediction (wanted: the requested names, None for all)."""
        outputs = []
        if wanted is None or "predict" in wanted:
            outputs.append({"name": "predict", **_tensor(prediction["result"])})
        probabilities = prediction.get("probabilities")
        if probabilities is not None and (wanted is None or "probabilities" in wanted):
            width = len(probabilities[0]) if probabilities else 0
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [len(probabilities), width],
                            "data": [p for row in probabilities for p in row]})
        return outputs


def _tensor(values: list) -> dict:
    """datatype, shape and flat data of one prediction a row."""
    kinds = {type(v) for v in values}
    if kinds <= NUMBER_TYPES:
        return {"datatype": "FP64", "shape": [len(values)], "data": values}
    if kinds == {bool}:
        return {"datatype": "BOOL", "shape": [len(values)], "data": values}
    numbers = {int, float}
    if kinds == {list} and len({len(v) for v in values}) == 1 and all(type(x) in numbers for v in values for x in v):
        return {"datatype": "FP64", "shape": [len(values), len(values[0])], "data": [x for v in values for x in v]}
    return {"datatype": "BYTES", "shape": [len(values)],
            "data": [v if type(v) is str else json.dumps(v) for v in values]}


def _column(tensor: dict, k: int) -> list:
    """The values of one per-column input: shape [rows] or [rows, 1], data flat or nested."""
    shape, data = tensor["shape"], tensor["data"]
    if not (_shape_ok(shape, 1) or (_shape_ok(shape, 2) and shape[1] == 1)):
        raise HTTPError(422, f"inputs[{k}].shape must be [rows] or [rows, 1], got {shape!r}")
    if not isinstance(data, list):
        raise HTTPError(422, f"inputs[{k}].data must be a list")
    if data and type(data[0]) is list:
        if not all(type(v) is list and len(v) == 1 for v in data):
            raise HTTPError(422, f"inputs[{k}].data must hold one value a row")
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise HTTPError(422, f"inputs[{k}].data has {len(data)} values; shape {shape} needs {shape[0]}")
    return data


def _matrix(tensor: dict) -> list:
    """The rows of one [rows, columns] tensor, data flat (row-major) or nested."""
    shape, data = tensor["shape"], tensor["data"]
    if not _shape_ok(shape, 2):
        raise HTTPError(422, f"inputs[0].shape must be [rows, features], got {shape!r}")
    if not isinstance(data, list):
        raise HTTPError(422, "inputs[0].data must be a list")
    if data and not isinstance(data[0], list):  # flat, row-major, as the protocol allows
        rows, width = shape
        if len(data) != rows * width:
            raise HTTPError(422, f"inputs[0].data has {len(data)} values; shape {shape} needs {rows * width}")
        data = [data[i * width:(i + 1) * width] for i in range(rows)]
    if len(data) != shape[0]:
        raise HTTPError(422, f"inputs[0].data has {len(data)} rows; shape says {shape[0]}")
    return data
