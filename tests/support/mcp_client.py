"""A real MCP client for the integration tests, driven by a JSON plan.

Reads one plan on stdin and prints one JSON line per step on stdout:

    {"url": "http://127.0.0.1:8210/mcp", "transport": "http" | "sse",
     "headers": {"Authorization": "Bearer t"},
     "protocol": "auto" | "legacy" | "2026-07-28",       (default "auto")
     "timeout_secs": 120,                                  (per request, optional)
     "steps": [{"op": "list_tools"},
               {"op": "call_tool", "name": "chat", "arguments": {...},
                "cancel_after_secs": 1.5, "timeout_secs": 30},
               {"op": "sleep", "secs": 0.5},
               {"op": "parallel", "steps": [...]}]}

All steps run in one MCP session; a "parallel" step runs its steps
concurrently in that session and reports them under "results". "auto" lets the library negotiate (it
probes the stateless 2026-07-28 protocol with server/discover and falls back
to the 2025-11-25 initialize handshake); "legacy" forces the handshake.

A call_tool line lists the progress notifications received, each with
"at_secs": when it arrived, in seconds since the call was sent.

Every line carries "op", "ok", "protocol_version" and "session_id"; a failed
step has "error": {"kind": "jsonrpc" | "http" | "connect" | ..., "code",
"message", "status"} (status: the HTTP status of the failing exchange, when
one was seen). When the connection cannot be opened, every step gets a line
with that error and "connect_failed": true, so results stay one per step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS


class Wire:
    """What crossed HTTP: statuses, the session id, and the JSON-RPC methods sent.

    The MCP library folds HTTP failures into generic JSON-RPC errors; the tests
    want the real status (401, 404, ...), so it is recorded here by httpx hooks.
    """

    def __init__(self) -> None:
        self.responses: list[int] = []
        self.sent_methods: list[str] = []
        self.session_id: str | None = None

    async def on_request(self, request: httpx2.Request) -> None:
        if request.method != "POST":
            return
        try:
            body = json.loads(request.content or b"null")
        except (ValueError, httpx2.RequestNotRead):
            return
        for message in body if isinstance(body, list) else [body]:
            if isinstance(message, dict) and "method" in message:
                self.sent_methods.append(message["method"])

    async def on_response(self, response: httpx2.Response) -> None:
        self.responses.append(response.status_code)
        session = response.headers.get("mcp-session-id")
        if session:
            self.session_id = session

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def failing_status(self, since: int) -> int | None:
        failed = [s for s in self.responses[since:] if s >= 400]
        return failed[-1] if failed else None


def leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException, wire: Wire, since: int) -> dict[str, Any]:
    exc = leaf(exc)
    status = wire.failing_status(since)
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
    message = str(exc).splitlines()[0] if str(exc) else repr(exc)
    error: dict[str, Any] = {"kind": type(exc).__name__, "message": message, "status": status}
    if isinstance(exc, MCPError):
        error.update(kind="http" if status else "jsonrpc", code=exc.code, message=exc.message)
        if exc.data is not None:
            error["data"] = exc.data
    elif isinstance(exc, httpx2.HTTPStatusError):
        error["kind"] = "http"
    elif isinstance(exc, (httpx2.TransportError, OSError)):
        error["kind"] = "connect"
    return error


def open_transport(plan: dict[str, Any], wire: Wire) -> Any:
    url = plan["url"]
    headers = dict(plan.get("headers") or {})
    timeout = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
    transport = plan.get("transport", "http")
    if transport == "http":
        http = httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks=wire.hooks())
        return http, streamable_http_client(url, http_client=http)
    if transport == "sse":

        def factory(headers=None, timeout=None, auth=None):  # noqa: ANN001 - the library's factory protocol
            return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, event_hooks=wire.hooks())

        def remember(session_id: str) -> None:
            wire.session_id = session_id

        return None, sse_client(url, headers=headers, httpx_client_factory=factory, on_session_created=remember)
    raise ValueError(f"unknown transport {transport!r} (http or sse)")


class Runner:
    def __init__(self, client: Client, wire: Wire, http: bool) -> None:
        self.client = client
        self.http = http
        self.wire = wire
        self.logs: list[Any] | None = None

    async def on_log(self, params: Any) -> None:
        if self.logs is not None:
            self.logs.append(params.model_dump(by_alias=True, mode="json", exclude_none=True))

    async def list_tools(self, step: dict[str, Any], out: dict[str, Any]) -> None:
        tools: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.client.list_tools(cursor=cursor, cache_mode="refresh")
            tools += [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in page.tools]
            cursor = page.next_cursor
            if cursor is None:
                out["tools"] = tools
                return

    async def call_tool(self, step: dict[str, Any], out: dict[str, Any]) -> None:
        progress: list[dict[str, Any]] = []
        started = time.monotonic()

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            at = round(time.monotonic() - started, 3)
            progress.append({"progress": value, "total": total, "message": message, "at_secs": at})

        out.update(name=step["name"], progress=progress)
        sent_before = len(self.wire.sent_methods)
        cancel_after = step.get("cancel_after_secs")
        with anyio.move_on_after(cancel_after if cancel_after is not None else float("inf")) as scope:
            result = await self.client.call_tool(
                step["name"],
                step.get("arguments") or {},
                read_timeout_seconds=step.get("timeout_secs"),
                progress_callback=on_progress,
            )
        if scope.cancelled_caught:
            out.update(ok=False, cancelled=True, cancel_notification_sent=await self.cancel_sent(sent_before))
            return
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        texts = [c.get("text", "") for c in dumped.get("content", []) if c.get("type") == "text"]
        out.update(
            isError=bool(dumped.get("isError", False)),
            structuredContent=dumped.get("structuredContent"),
            content=dumped.get("content", []),
            text="\n".join(texts),
        )

    async def cancel_sent(self, sent_before: int) -> bool:
        """Whether the abandoned call was followed by a notifications/cancelled.

        The library sends that notification on handshake-era connections (and
        over SSE); on a 2026-07-28 streamable HTTP connection it aborts the POST
        instead. The notification leaves asynchronously, so it is awaited briefly.
        """
        modern_http = self.http and self.client.protocol_version in MODERN_PROTOCOL_VERSIONS
        deadline = time.monotonic() + (0 if modern_http else 2.0)
        while True:
            if "notifications/cancelled" in self.wire.sent_methods[sent_before:]:
                return True
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(0.02)

    async def parallel(self, step: dict[str, Any], out: dict[str, Any]) -> None:
        steps = step.get("steps") or []
        results: list[dict[str, Any]] = [{} for _ in steps]

        async def one(i: int) -> None:
            results[i] = await self.step(steps[i], top=False)

        async with anyio.create_task_group() as tg:
            for i in range(len(steps)):
                tg.start_soon(one, i)
        out["results"] = results

    async def step(self, step: dict[str, Any], top: bool = True) -> dict[str, Any]:
        op = step.get("op")
        if top:
            self.logs = []
        since = len(self.wire.responses)
        started = time.monotonic()
        line: dict[str, Any] = {"op": op, "ok": True}
        try:
            if op == "list_tools":
                await self.list_tools(step, line)
            elif op == "call_tool":
                await self.call_tool(step, line)
            elif op == "parallel":
                await self.parallel(step, line)
            elif op == "sleep":
                await anyio.sleep(float(step.get("secs", 0)))
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # every failure becomes a line, never a traceback
            line.update(ok=False, error=describe(exc, self.wire, since))
        if top:
            line["logs"] = self.logs
        line["elapsed_secs"] = round(time.monotonic() - started, 3)
        line["protocol_version"] = self.client.protocol_version
        line["session_id"] = self.wire.session_id
        return line


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def run(plan: dict[str, Any]) -> None:
    steps = plan.get("steps") or []
    done = 0
    connected = False
    wire = Wire()
    failure: BaseException | None = None
    try:
        async with AsyncExitStack() as stack:
            http, transport = open_transport(plan, wire)
            if http is not None:
                await stack.enter_async_context(http)
            runner: Runner | None = None

            async def on_log(params: Any) -> None:
                if runner is not None:
                    await runner.on_log(params)

            client = Client(
                transport,
                mode=plan.get("protocol", "auto"),
                read_timeout_seconds=plan.get("timeout_secs"),
                logging_callback=on_log,
            )
            await stack.enter_async_context(client)
            connected = True
            runner = Runner(client, wire, http is not None)
            for step in steps:
                emit(await runner.step(step))
                done += 1
    except BaseException as exc:  # noqa: BLE001 - reported as lines below
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        failure = exc
    if failure is not None and done < len(steps):
        error = describe(failure, wire, 0)
        for step in steps[done:]:
            emit({"op": step.get("op"), "ok": False, "connect_failed": not connected, "error": error})
    elif failure is not None:
        print(f"mcp_client: error while closing the session: {leaf(failure)!r}", file=sys.stderr)


def main() -> None:
    plan = json.load(sys.stdin)
    anyio.run(run, plan)
    sys.stdout.flush()
    sys.stderr.flush()
    # Interpreter teardown of the library's modules costs a noticeable part of
    # a second per run; every result is already written.
    os._exit(0)


if __name__ == "__main__":
    main()
