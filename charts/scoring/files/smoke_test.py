"""`helm test`: the scoring service answers through its Service (the chart runs this in the release's own image).

Waits for /v2/health/ready, then POSTs the request example the service advertises in /openapi.json to
/score (with the first scoring key when SCORING_KEY is set) and checks one prediction comes back a row.
Standard library only; exit 0 on success, 1 with the reason on stderr.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(url, body=None, key=""):
    """(status, parsed JSON body) of a GET, or a POST when body is given."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:300]


def main():
    url = os.environ["SCORING_URL"].rstrip("/")
    key = os.environ.get("SCORING_KEY", "").split(",")[0].strip()
    deadline = time.monotonic() + float(os.environ.get("SMOKE_TIMEOUT_SECONDS", "60"))
    while True:
        try:
            if call(f"{url}/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} is not ready")
        time.sleep(1)
    status, spec = call(f"{url}/openapi.json")
    try:
        example = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["example"]
    except (KeyError, TypeError):
        sys.exit(f"GET /openapi.json (HTTP {status}) advertises no example for POST /score")
    status, answer = call(f"{url}/score", json.dumps(example).encode(), key)
    result = answer.get("result") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(result, list) or len(result) != len(example["data"]):
        sys.exit(f"POST /score: HTTP {status}, {answer!r:.300}")
    print(f"smoke test passed: {len(result)} predictions from {url}")


if __name__ == "__main__":
    main()
