"""A test-only container runtime whose exec runs the command as a local process.

Exec through the agent is a relay: the runtime names a streaming server (CRI's Exec answer) and
the agent carries the remote-command protocol between the API server and it.  Until real
containers exist on every machine, this runtime is the far end: `ProcessExecRuntime` is the
hollow runtime plus a streaming server (aiohttp, in the test's event loop) that speaks
v5/v4/v1 channel.k8s.io for real: stdin on channel 0 (with v5's CLOSE as EOF), stdout and
stderr on 1 and 2, and the exit Status on channel 3, exactly what a CRI streaming server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from arktos.agent.runtime import NoSuchContainer
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.client import remotecommand as rc

SPOKEN = (rc.V5, rc.V4, rc.V1)


class ProcessExecRuntime(HollowRuntime):
    """Hollow containers whose exec runs `command` on this machine (no container around it)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._sessions: dict[str, tuple[list[str], bool, bool, bool]] = {}
        self._runner: web.AppRunner | None = None
        self.base = ""
        self.negotiated: list[str] = []  # what each session spoke, for tests

    async def start(self) -> None:
        await super().start()
        app = web.Application()
        app.router.add_get("/exec/{token}", self._serve)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        await super().stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def exec_url(self, pod: dict, container: str, command: list[str], *, stdin: bool, stdout: bool,
                       stderr: bool, tty: bool) -> str:
        state = self._pods.get(pod["metadata"].get("uid", ""))
        if state is None or not any(c.name == container and c.state == "running" for c in state.containers):
            raise NoSuchContainer(f"container {container!r} is not running")
        token = secrets.token_urlsafe(16)  # one-time, as CRI's URLs are
        self._sessions[token] = (command, stdin, stdout, stderr)
        return f"{self.base}/exec/{token}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        session = self._sessions.pop(request.match_info["token"], None)
        if session is None:
            return web.Response(status=404, text="unknown or used exec session")
        command, want_stdin, want_stdout, want_stderr = session
        ws = web.WebSocketResponse(protocols=SPOKEN)
        await ws.prepare(request)
        protocol = ws.ws_protocol or ""
        self.negotiated.append(protocol)
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if want_stdout else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE if want_stderr else asyncio.subprocess.DEVNULL)
        except OSError as exc:
            await rc.encode(ws, protocol, rc.ERROR, rc.exit_status(126, f"cannot run {command[0]}: {exc}"))
            await ws.close()
            return ws

        async def pump(reader: asyncio.StreamReader | None, channel: int) -> None:
            while reader is not None and (chunk := await reader.read(32 * 1024)):
                await rc.encode(ws, protocol, channel, chunk)

        async def feed() -> None:
            async for msg in ws:
                frame = rc.decode(msg, protocol)
                if frame is None or proc.stdin is None:
                    continue
                channel, data = frame
                if channel == rc.STDIN:
                    proc.stdin.write(data)
                    with contextlib.suppress(ConnectionError):
                        await proc.stdin.drain()
                elif channel == rc.CLOSE and data[:1] == bytes((rc.STDIN,)):
                    proc.stdin.close()

        feeder = asyncio.create_task(feed())
        await asyncio.gather(pump(proc.stdout, rc.STDOUT), pump(proc.stderr, rc.STDERR))
        code = await proc.wait()
        await rc.encode(ws, protocol, rc.ERROR, rc.exit_status(code) if rc.version(protocol) >= 4
                        else (b"" if code == 0 else f"command exited with {code}".encode()))
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await feeder
        await ws.close()
        return ws
