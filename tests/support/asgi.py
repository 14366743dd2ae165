"""Drive an ASGI app in-process with the real ASGI protocol (no HTTP server)."""
import asyncio
import json


def _request(method: str, path: str, body, headers, chunk: int | None):
    """(scope, receive) of one request."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk and body else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return {"type": "http", "method": method, "path": path, "headers": raw_headers}, receive


async def request(app, method: str, path: str, body=b"", headers=None, chunk: int | None = None):
    """Send one request on the running event loop; return (status, headers dict, parsed JSON or raw bytes)."""
    scope, receive = _request(method, path, body, headers, chunk)
    sent = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    response_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    payload = sent[1]["body"]
    if response_headers.get("content-type") == "application/json" and payload:
        payload = json.loads(payload)
    return status, response_headers, payload


def call(app, method: str, path: str, body=b"", headers=None, chunk: int | None = None):
    """Send one request; return (status, headers dict, parsed JSON or raw bytes)."""
    return asyncio.run(request(app, method, path, body, headers, chunk))
