"""A small MCP server (the Python `mcp` package's MCPServer) that checks the
test client itself: structured output, progress, tool errors, cancellation
and bearer authentication, over streamable HTTP and legacy SSE.

Serves `/mcp` and `/sse` (+ `/message`) on two ephemeral loopback ports and
prints `{"http": PORT, "sse": PORT}` once both listen. Requests without
`Authorization: Bearer <token>` (argv[1]) get a 401.
"""

from __future__ import annotations

import json
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse

server = MCPServer("client-check")
counts = {"started": 0, "completed": 0, "cancelled": 0}


class Echo(BaseModel):
    said: str
    length: int


@server.tool(description="Echoes its input as structured output.")
def echo(text: str) -> Echo:
    return Echo(said=text, length=len(text))


@server.tool(description="Reports progress once per step, delay seconds apart.")
async def slow(steps: int, ctx: Context, delay: float = 0.1) -> str:
    counts["started"] += 1
    try:
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
            await anyio.sleep(delay)
    except anyio.get_cancelled_exc_class():
        counts["cancelled"] += 1
        raise
    counts["completed"] += 1
    return f"did {steps} steps"


@server.tool(description="Always fails.")
def fail() -> str:
    raise ValueError("it broke")


@server.tool(description="How many slow calls started, completed and were cancelled.")
def stats() -> dict[str, int]:
    return dict(counts)


class BearerAuth(BaseHTTPMiddleware):
    def __init__(self, app, token: str) -> None:  # noqa: ANN001 - starlette's ASGI app
        super().__init__(app)
        self.expected = f"Bearer {token}"

    async def dispatch(self, request, call_next):  # noqa: ANN001, ANN201 - starlette's signature
        if request.headers.get("authorization") != self.expected:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return await call_next(request)


def listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


async def main(token: str) -> None:
    http_app = server.streamable_http_app()
    sse_app = server.sse_app(message_path="/message")
    apps = [http_app, sse_app]
    socks = [listen(), listen()]
    async with anyio.create_task_group() as tg:
        for app, sock in zip(apps, socks):
            app.add_middleware(BearerAuth, token=token)
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
            tg.start_soon(lambda c=config, s=sock: uvicorn.Server(c).serve(sockets=[s]))
        print(json.dumps({"http": socks[0].getsockname()[1], "sse": socks[1].getsockname()[1]}), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
