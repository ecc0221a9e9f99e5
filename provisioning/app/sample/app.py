"""Sample app deployed when a stack sets no appDir.

WSGI (`app:application`, served by gevent workers) and ASGI (`app:asgi_application`,
served by uvicorn workers) flavours of the same three endpoints:

  /             JSON naming the node and the release that answered
  /healthz      200 "ok": the rollout gates and the load balancer probe it
  /wait?ms=N    answers after N milliseconds of simulated I/O (at most 10 minutes),
                which is what the benchmark holds 50,000 requests open with
"""
import json
import os
import socket
import time

NODE = os.environ.get("NODE_NAME") or socket.gethostname()
# The release directory is named after the content hash of the app.
RELEASE = os.path.basename(os.path.dirname(os.path.realpath(__file__)))
MAX_WAIT_MS = 600_000


def _wait_ms(query):
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "ms" and value.isdigit():
            return min(int(value), MAX_WAIT_MS)
    return 0


def _route(path, query):
    """(status, content type, body) for a request, or None to wait first."""
    if path == "/healthz":
        return "200 OK", "text/plain", b"ok\n"
    if path in ("/", "/wait"):
        body = {"node": NODE, "release": RELEASE}
        if path == "/wait":
            body["waited_ms"] = _wait_ms(query)
        return "200 OK", "application/json", (json.dumps(body) + "\n").encode()
    return "404 Not Found", "text/plain", b"not found\n"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    if path == "/wait":
        # gunicorn's gevent worker monkey-patches time.sleep: this yields, it does not block.
        time.sleep(_wait_ms(query) / 1000)
    status, content_type, body = _route(path, query)
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    import asyncio

    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode()
    if path == "/wait":
        await asyncio.sleep(_wait_ms(query) / 1000)
    status, content_type, body = _route(path, query)
    await send({
        "type": "http.response.start",
        "status": int(status.split()[0]),
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
