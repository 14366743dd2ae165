"""Ceilings for bench/serving.py: a bare endpoint returning a constant, raw ASGI and Starlette, on uvicorn."""

BODY = b'{"result": [152.0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def score(request):
        await request.body()
        return Response(BODY, media_type="application/json")

    return Starlette(routes=[Route("/score", score, methods=["POST"])])


starlette_app = _starlette_app()
