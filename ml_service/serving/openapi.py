"""The OpenAPI description of the scoring API, and a self-contained /docs page (no CDN)."""
from __future__ import annotations


def _error(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def spec(model_name: str, n_features: int | None, auth: bool) -> dict:
    """OpenAPI 3.1 document for this server."""
    row = {"type": "array", "items": {"type": "number"}}
    if n_features is not None:
        row.update(minItems=n_features, maxItems=n_features)
    errors = {"400": _error("invalid JSON"), "413": _error("body too large"), "415": _error("not application/json"),
              "422": _error("wrong shape, non-numbers, NaN or empty"), "500": _error("run() failed")}
    if auth:
        errors["401"] = _error("missing or wrong key")
    json_body = {"application/json": {"schema": {"type": "object"}}}
    document = {
        "openapi": "3.1.0",
        "info": {"title": f"Scoring service: {model_name}", "version": "1"},
        "paths": {
            "/score": {"post": {
                "summary": "Predict (Azure ML convention)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["data"],
                    "properties": {"data": {"type": "array", "minItems": 1, "items": row}}}}}},
                "responses": {"200": {"description": "predictions", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"result": {"type": "array", "items": {"type": "number"}}}}}}},
                    **errors}}},
            f"/v2/models/{model_name}/infer": {"post": {
                "summary": "Predict (Open Inference Protocol v2)",
                "requestBody": {"required": True, "content": json_body},
                "responses": {"200": {"description": "inference response", "content": json_body}, **errors}}},
            f"/v2/models/{model_name}": {"get": {"summary": "Model metadata", "responses": {
                "200": {"description": "metadata"}}}},
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
        for path in ("/score", f"/v2/models/{model_name}/infer"):
            document["paths"][path]["post"]["security"] = [{"bearer": []}]
    return document


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Scoring API</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em} code,pre{background:#f4f4f4;padding:2px 4px}</style>
</head><body><h1 id="title">Scoring API</h1>
<p>Machine-readable description: <a href="/openapi.json">/openapi.json</a>. Example:</p>
<pre>curl -s -H 'Content-Type: application/json' \\
     -d '{"data": [[1,2,3,4,5,6,7,8,9,10]]}' http://127.0.0.1:PORT/score</pre>
<div id="paths"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('title').textContent = doc.info.title;
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
