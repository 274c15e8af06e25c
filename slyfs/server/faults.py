"""Fault injection for `slyfs serve`. FOR TESTING ONLY: it makes the server misbehave on purpose.

An ASGI middleware that, drawing from a seeded random generator, makes a fraction of the
API requests fail the ways a real server and network do, so the HTTP client's timeouts,
retries and stream resumption are exercised end to end on loopback:

- `500`, `503`: an error status with a JSON error body, before the request is handled;
- `429`: too many requests, with `Retry-After: 1`;
- `reset`: the request is handled, the status line and headers go out, then the connection is
  closed after a random part of the body (up to 64 KiB, never all of it): a truncated response,
  as when a connection resets, which hits streamed bulk downloads between or inside parts;
- `slow`: the answer comes `delay` seconds late;
- `garbled`: the request is handled, and a JSON answer comes back with status 200 and a body that
  is not JSON (an HTML error page, as a misconfigured proxy gives); other answers go out as they are.

Configured by a spec string: `rate=0.2,seed=1,kinds=500+503+429+reset+slow+garbled,delay=2`; `stall_blobs=S`
makes every upload wait S seconds after its blobs are stored, before their rows are committed.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

KINDS = ("500", "503", "429", "reset", "slow", "garbled")
GARBLED_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
RESET_MAX_BYTES = 64 << 10

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaultSpec:
    rate: float = 0.1
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    delay: float = 2.0
    # Seconds the store waits between writing an upload's blobs and recording them: a window in
    # which a test kills the server (kill -9 mid-upload leaves an orphan blob for `--gc`).
    stall_blobs: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """`rate=0.2,seed=1,kinds=500+503+429+reset+slow,delay=2`; omitted keys keep their defaults."""
        values: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq:
                raise ValueError(f"fault spec item {item!r} is not key=value")
            try:
                if key == "rate":
                    values["rate"] = float(value)
                elif key == "seed":
                    values["seed"] = int(value)
                elif key == "delay":
                    values["delay"] = float(value)
                elif key == "stall_blobs":
                    values["stall_blobs"] = float(value)
                elif key == "kinds":
                    values["kinds"] = tuple(k.strip() for k in value.split("+") if k.strip())
                else:
                    raise ValueError(f"unknown fault spec key {key!r} (rate, seed, kinds, delay, stall_blobs)")
            except ValueError as e:
                raise ValueError(f"fault spec {item!r}: {e}") from None
        spec = cls(**values)
        if not 0.0 <= spec.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        unknown = [k for k in spec.kinds if k not in KINDS]
        if unknown or not spec.kinds:
            raise ValueError(f"fault kinds must be some of {'+'.join(KINDS)}, got {'+'.join(spec.kinds)}")
        if spec.delay < 0:
            raise ValueError("fault delay must not be negative")
        return spec


class InjectedReset(Exception):
    """Raised mid-response to make the server drop the connection; not a bug."""


class FaultInjector:
    """ASGI middleware injecting the faults of a FaultSpec into requests under `prefix`."""

    def __init__(self, app: ASGIApp, spec: FaultSpec, prefix: str = "/public/api/v3/") -> None:
        self.app = app
        self.spec = spec
        self.prefix = prefix
        self._rng = random.Random(spec.seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = dict.fromkeys(spec.kinds, 0)

    def _draw(self) -> tuple[str, int] | None:
        """A fault kind and, for resets, how many body bytes go out first; None for no fault."""
        with self._lock:
            if self._rng.random() >= self.spec.rate:
                return None
            kind = self._rng.choice(self.spec.kinds)
            self.injected[kind] += 1
            return kind, self._rng.randrange(RESET_MAX_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        fault = self._draw()
        if fault is None:
            await self.app(scope, receive, send)
            return
        kind, cut = fault
        method = str(scope["path"])[len(self.prefix) :]
        log.info("fault injected: %s on %s", kind, method)
        if kind == "slow":
            await anyio.sleep(self.spec.delay)
            await self.app(scope, receive, send)
        elif kind == "reset":
            await self.app(scope, receive, _truncating(send, cut))
        elif kind == "garbled":
            await self.app(scope, receive, _garbling(send))
        else:
            await _error(send, int(kind))


async def _error(send: Send, status: int) -> None:
    body = json.dumps({"error": "injected fault", "details": {"message": f"injected {status} (testing)"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _truncating(send: Send, cut: int) -> Send:
    """A `send` that passes the headers and at most `cut` body bytes (never the last one), then aborts."""
    sent = 0

    async def wrapped(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            body = bytes(message.get("body", b""))
            if message.get("more_body", False) and sent + len(body) <= cut:
                sent += len(body)
                await send(message)
                return
            keep = max(min(cut - sent, len(body) - 1), 0)
            await send({"type": "http.response.body", "body": body[:keep], "more_body": True})
            raise InjectedReset("injected connection reset (testing)")
        await send(message)

    return wrapped


def _garbling(send: Send) -> Send:
    """A `send` that gives a JSON answer GARBLED_BODY instead of its body (same status); others pass."""
    garble = False

    async def wrapped(message: Message) -> None:
        nonlocal garble
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            garble = any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in headers)
            if garble:
                headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"text/html"), (b"content-length", str(len(GARBLED_BODY)).encode())]
                message = {**message, "headers": headers}
            await send(message)
        elif garble and message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": GARBLED_BODY})
        else:
            await send(message)

    return wrapped


def _is_injected(exc: BaseException | None) -> bool:
    if isinstance(exc, InjectedReset):
        return True
    return any(_is_injected(e) for e in getattr(exc, "exceptions", ()) or ())


class QuietInjectedResets(logging.Filter):
    """Drops the server's "Exception in ASGI application" traceback for injected resets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_injected(record.exc_info[1]))
