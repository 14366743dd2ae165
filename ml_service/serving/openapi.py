"""The OpenAPI description of the scoring API for the hosted model, and a self-contained /docs page (no CDN).

The request schema comes from the model's signature (column names, JSON types, which may be null) and the
example from MLflow's saved input example, or from the signature.
"""
from __future__ import annotations

from ml_service.serving.schema import INTEGER_RANGE, Column, Schema


def _error(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _value(column: Column) -> dict:
    """JSON Schema of one value of column."""
    value: dict = {"type": column.json_type if column.required else [column.json_type, "null"]}
    if column.type in INTEGER_RANGE:
        value["minimum"], value["maximum"] = INTEGER_RANGE[column.type]
    if column.type == "datetime":
        value["format"] = "date-time"
    return value


def row_schema(schema: Schema) -> dict:
    """JSON Schema of one row of /score: a list in column order, or (named columns) an object of columns."""
    if not schema.typed:
        row = {"type": "array", "items": {"type": "number"}, "minItems": 1}
        if schema.width:
            row.update(minItems=schema.width, maxItems=schema.width)
        return row
    n = len(schema.columns)
    values = {"type": "array", "prefixItems": [_value(c) for c in schema.columns], "items": False,
              "minItems": n, "maxItems": n, "description": "values in column order: " + ", ".join(schema.names)}
    record = {"type": "object", "properties": {c.name: _value(c) for c in schema.columns},
              "required": [c.name for c in schema.columns if c.required], "additionalProperties": False,
              "description": "one value a column; optional columns may be left out (null)"}
    return {"oneOf": [values, record]}


def v2_example(schema: Schema, rows: list) -> dict:
    """An Open Inference Protocol request for rows: one input a column, or one 2-D tensor when untyped."""
    if not schema.typed:
        return {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                            "data": [v for row in rows for v in row]}]}
    datatypes = {"boolean": "BOOL", "string": "BYTES", "datetime": "BYTES", "binary": "BYTES",
                 "double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32"}
    return {"inputs": [{"name": c.name, "shape": [len(rows)], "datatype": datatypes[c.type],
                        "data": [row[j] for row in rows]} for j, c in enumerate(schema.columns)]}


def spec(model_name: str, schema: Schema, example: list | None, outputs: list[dict], auth: bool) -> dict:
    """OpenAPI 3.1 document for this server and its model (example: rows the model takes, if known)."""
    errors = {"400": _error("invalid JSON"), "413": _error("body too large"), "415": _error("not application/json"),
              "422": _error("data that does not fit the model's schema: wrong shape or type, null where required, "
                            "NaN, unknown or missing columns, empty"),
              "500": _error("run() failed")}
    if auth:
        errors["401"] = _error("missing or wrong key")
    label = {"BYTES": {"type": "string"}, "BOOL": {"type": "boolean"}}.get(outputs[0]["datatype"], {"type": "number"})
    result = {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "array", "items": label, "description": "one prediction a row"}}}
    if any(o["name"] == "probabilities" for o in outputs):
        result["properties"].update(
            probabilities={"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                           "description": "one probability a class, a row"},
            classes={"type": "array", "description": "the classes, in the order of probabilities"})
    score_body: dict = {"schema": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "minItems": 1, "items": row_schema(schema)}}}}
    infer_body: dict = {"schema": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1,
                   "items": {"type": "object", "required": ["name", "shape", "datatype", "data"]}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}}
    if example:
        score_body["example"] = {"data": example}
        infer_body["example"] = v2_example(schema, example)
    json_body = {"application/json": {"schema": {"type": "object"}}}
    document = {
        "openapi": "3.1.0",
        "info": {"title": f"Scoring service: {model_name}", "version": "1",
                 "description": _describe(schema)},
        "paths": {
            "/score": {"post": {
                "summary": "Predict (Azure ML convention)",
                "requestBody": {"required": True, "content": {"application/json": score_body}},
                "responses": {"200": {"description": "predictions", "content": {"application/json": {
                    "schema": result}}}, **errors}}},
            f"/v2/models/{model_name}/infer": {"post": {
                "summary": "Predict (Open Inference Protocol v2)",
                "requestBody": {"required": True, "content": {"application/json": infer_body}},
                "responses": {"200": {"description": "inference response", "content": json_body}, **errors}}},
            f"/v2/models/{model_name}": {"get": {"summary": "Model metadata", "responses": {
                "200": {"description": "metadata", "content": json_body}}}},
            "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}},
            "/v2/health/ready": {"get": {"summary": "Readiness", "responses": {
                "200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {
            "error": {"type": "string"}, "request_id": {"type": "string"}}}}},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path in ("/score", f"/v2/models/{model_name}/infer", f"/v2/models/{model_name}"):
            for operation in document["paths"][path].values():
                operation["security"] = [{"bearer": []}]
    return document


def _describe(schema: Schema) -> str:
    if not schema.typed:
        width = f"{schema.width} numbers" if schema.width else "numbers"
        return f"The model takes rows of {width} (it has no column signature)."
    columns = ", ".join(f"{c.name} ({c.type}{'' if c.required else ', may be null'})" for c in schema.columns)
    return f"The model takes rows of these columns, in this order: {columns}."


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Scoring API</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em} code,pre{background:#f4f4f4;padding:2px 4px;
white-space:pre-wrap}</style>
</head><body><h1 id="title">Scoring API</h1>
<p id="about"></p>
<p>Machine-readable description: <a href="/openapi.json">/openapi.json</a>. Example:</p>
<pre id="example">loading /openapi.json ...</pre>
<div id="paths"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('title').textContent = doc.info.title;
  document.getElementById('about').textContent = doc.info.description || '';
  const body = doc.paths['/score'].post.requestBody.content['application/json'];
  const key = doc.paths['/score'].post.security ? " -H 'Authorization: Bearer $KEY'" : '';
  document.getElementById('example').textContent = body.example
    ? "curl -s -H 'Content-Type: application/json'" + key + " \\\\\\n     -d '" +
      JSON.stringify(body.example).replace(/'/g, "'\\\\''") + "' " + location.origin + '/score'
    : 'POST ' + location.origin + '/score with {"data": [[...], ...]}';
  const out = document.getElementById('paths');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const h = document.createElement('h3');
      h.textContent = method.toUpperCase() + ' ' + path + ': ' + op.summary;
      const p = document.createElement('pre');
      p.textContent = 'responses: ' + Object.keys(op.responses).join(', ');
      out.append(h, p);
    }
  }
});
</script></body></html>
"""
