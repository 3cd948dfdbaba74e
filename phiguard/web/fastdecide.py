"""``POST /v1/decide`` without the framework on its hot path.

The policy decision point is called by every clinical system before it shows a record, so
this one route has to carry thousands of requests a second. FastAPI's routing (a linear scan
of ~150 routes), dependency solving and thread-pool hand-off cost several times more than
the decision itself. This plain ASGI layer sits just inside :class:`SecurityHeaders` (so
every answer still carries the hardening headers) and answers the common case itself:

* ``POST /v1/decide`` with ``Authorization: Bearer`` and a JSON body;
* the token verifies (the same :meth:`ApiTokens.authenticate`, cached as configured) and
  holds the ``decide`` scope;
* the body validates against the route's own model (``api_access.DecideIn``).

Anything else — no or a bad token, a missing scope, a console session, another content
type, a body that does not validate or is too large to buffer — is handed to FastAPI
unchanged (the buffered body replayed), so every error answer stays exactly the framework's.

The decision itself goes to :class:`phiguard.access.batching.DecisionBatcher`: it is
evaluated off the event loop and its audit record is written, with those of concurrent
requests, in one durable append **before** the answer is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from phiguard.access.batching import batcher_for
from phiguard.errors import PhiguardError
from phiguard.web.auth.roles import Perm
from phiguard.web.security import ASGIApp, Message, Receive, Scope, Send
from phiguard.web.state import Console

if TYPE_CHECKING:
    from phiguard.app import App

log = logging.getLogger("phiguard.web")

PATH = "/v1/decide"
MAX_BUFFER = 64 * 1024  # a decide body is a few hundred bytes; larger ones take the slow path
_JSON = (b"content-type", b"application/json")


class DecideFastPath:
    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        auth = ctype = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"content-type":
                ctype = value
        if auth is None or ctype is None or not ctype.startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        body, more, extra = await _read_body(receive)
        if more or not self._authorised(auth):
            await self.app(scope, _replay(body, more, extra, receive), send)
            return
        from phiguard.web.routes.api_access import DecideIn

        try:
            question = DecideIn.model_validate_json(body).model_dump()
        except ValidationError:
            await self.app(scope, _replay(body, more, extra, receive), send)
            return
        status, payload = await decide(self.console, question)
        await _answer(send, status, payload)

    def _authorised(self, auth: bytes) -> bool:
        scheme, _, credential = auth.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        client = self.console.tokens.authenticate(credential.strip())
        return client is not None and Perm.DECIDE in client.scopes


async def answer(app: App, question: dict[str, Any]) -> dict[str, Any]:
    """Submit to the app's batcher and wait, without blocking the event loop, until the
    decision's record is durable; its error, if any, is raised here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()

    def done(result: dict[str, Any] | None, error: BaseException | None) -> None:
        loop.call_soon_threadsafe(_settle, future, result, error)

    batcher_for(app).submit(question, done)
    return await future


async def decide(console: Console, question: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """:func:`answer`, with errors mapped to statuses as the app's exception handlers map
    them."""
    try:
        return 200, await answer(console.app, question)
    except PhiguardError as exc:
        from phiguard.web.app import status_for

        status = status_for(exc)
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, PATH, exc)
        return status, {
            "detail": str(exc) if status < 500 else "internal error; see the server log"
        }
    except Exception:
        log.exception("unexpected error on %s", PATH)
        return 500, {"detail": "internal error"}


def _settle(
    future: asyncio.Future[dict[str, Any]],
    result: dict[str, Any] | None,
    error: BaseException | None,
) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def _read_body(receive: Receive) -> tuple[bytes, bool, list[Message]]:
    """Buffer up to MAX_BUFFER bytes: (body, more_body_pending, non-body messages seen)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # a disconnect: let the framework see it
            return b"".join(chunks), True, [message]
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False, []
        if size > MAX_BUFFER:
            return b"".join(chunks), True, []


def _replay(body: bytes, more: bool, extra: list[Message], receive: Receive) -> Receive:
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": more}, *extra]

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    raw = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(raw)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})
