#!/usr/bin/env python
"""The grading app on uvicorn and Starlette, for the load test's side-by-side run only.

`scripts/load_test_grading.py` runs the same requests against `quickdraw grade serve` (the
standard library's `http.server` with the toolkit's own limits) and against this: the same
`GradingApp` (the same store, the same validation) behind a Starlette app on uvicorn, with
Starlette's TrustedHostMiddleware for the Host check and uvicorn's keep-alive timeout, over
TLS. It is not a way to serve a study: issue 20's per-address cap, per-connection request
and time caps, strict header reading and the rest are not rebuilt here (see docs/grading.md,
"Why http.server").

    python scripts/_asgi_grading.py --db DB --certfile CERT --keyfile KEY [--port 0]
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quickdraw_tools.eval.grading.server import MAX_BODY, SECURITY_HEADERS, GradingApp
from quickdraw_tools.eval.grading.store import GradeStore


def asgi_app(app: GradingApp, hosts: list[str]) -> Starlette:
    async def endpoint(request: Request) -> Response:
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY}"}, 413)
        body = await request.body() if request.method == "POST" else None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        # the store is blocking (SQLite, fsync per grade): a worker thread per request
        answer = await run_in_threadpool(app.handle, request.method, target, headers, body)
        return Response(
            answer.body,
            int(answer.status),
            {**SECURITY_HEADERS, **answer.headers},
            answer.content_type,
        )

    routes = [Route("/{path:path}", endpoint, methods=["GET", "POST"])]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    return Starlette(routes=routes, middleware=middleware)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    with GradeStore(args.db) as store:
        app = asgi_app(GradingApp(store, https=True), ["127.0.0.1", "localhost"])
        config = uvicorn.Config(
            app,
            ssl_certfile=args.certfile,
            ssl_keyfile=args.keyfile,
            timeout_keep_alive=5,
            log_level="warning",
            http="h11",
            backlog=2048,
        )
        print(f"grading page: https://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
