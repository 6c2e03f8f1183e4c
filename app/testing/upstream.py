"""Scripted HTTP/1.1 upstream server that misbehaves on purpose for client tests."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "ReceivedRequest",
    "Reply",
    "ScriptedUpstream",
    "closed_port_url",
]

_logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

# Seconds that shutdown waits for the cancelled connection handlers.
_SHUTDOWN_TIMEOUT = 1.0

# Seconds that a rejected request's remaining input is read before closing.
_REJECTION_DRAIN_TIMEOUT = 0.5

# Responses with these statuses end after the headers (RFC 9112 section 6.3).
_NO_CONTENT_STATUSES = frozenset({204, 304})

# Bytes of a filler body written per write and drain, which bound the memory that
# the server holds for one such body.
_FILLER_PIECE = b"x" * (64 * 1024)

_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")


@dataclass(frozen=True)
class ReceivedRequest:
    """HTTP request as the upstream received it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def route_path(self) -> str:
        """Path without the query string."""
        return self.path.partition("?")[0]

    def json(self) -> Any:
        """Return the body decoded as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """One scripted response, or one scripted way of not sending a response.

    A dict or list body is sent as JSON, a str body as text/plain and a bytes body as
    application/octet-stream, unless ``content_type`` is set. ``headers`` replace the
    default headers of the same name, so a test can send a false Content-Length.
    ``filler_bytes`` replaces ``body`` with that many ``x`` bytes, written in 64 KiB
    pieces, so that a body of many megabytes never sits in the server's memory whole.

    The misbehaviours, applied in this order:

    - ``hang``: read the request and send nothing until the client or the server
      closes the connection. It ignores every other field.
    - ``delay_headers``: wait this many seconds before sending anything.
    - ``reset``: close with a TCP RST instead of sending a response.
    - ``chunked``: send the body with chunked transfer coding. ``cut_chunked`` omits
      the last chunk and closes the connection.
    - ``slow_body_interval``: send the status line and headers at once, then
      ``slow_body_bytes`` body bytes after each interval, in seconds.
    - ``truncate_body_to``: send only this many body bytes under the full
      Content-Length, then close the connection.
    - ``reset_after_bytes``: send the headers and only this many body bytes, then
      close with a TCP RST. A chunked body is cut after this many payload bytes.
    - ``close_after``: send ``Connection: keep-alive`` but close the connection
      after the response.
    """

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_headers: float = 0
    hang: bool = False
    slow_body_interval: float | None = None
    slow_body_bytes: int = 1
    truncate_body_to: int | None = None
    close_after: bool = False
    reset: bool = False
    chunked: bool = False
    cut_chunked: bool = False
    reset_after_bytes: int | None = None
    filler_bytes: int | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            message = f"status must be a final status 200-599, got {self.status}"
            raise ValueError(message)

        if self.delay_headers < 0:
            message = f"delay_headers must be >= 0 seconds, got {self.delay_headers}"
            raise ValueError(message)

        if self.slow_body_interval is not None and self.slow_body_interval <= 0:
            message = (
                f"slow_body_interval must be > 0 seconds or None, "
                f"got {self.slow_body_interval}"
            )
            raise ValueError(message)

        if self.slow_body_bytes < 1:
            message = f"slow_body_bytes must be >= 1, got {self.slow_body_bytes}"
            raise ValueError(message)

        if self.hang and self.reset:
            message = "hang and reset exclude each other, so set only one"
            raise ValueError(message)

        if self.cut_chunked and not self.chunked:
            message = "cut_chunked requires chunked=True"
            raise ValueError(message)

        if self.status in _NO_CONTENT_STATUSES and (
            self.body is not None or self.chunked
        ):
            message = (
                f"status {self.status} has no content, so leave body and chunked unset"
            )
            raise ValueError(message)

        self._validate_filler()
        self._validate_truncation()
        self._validate_reset_after()

    def _validate_filler(self) -> None:
        if self.filler_bytes is None:
            return

        if self.filler_bytes < 0:
            message = f"filler_bytes must be >= 0, got {self.filler_bytes}"
            raise ValueError(message)

        if self.body is not None or self.status in _NO_CONTENT_STATUSES:
            message = (
                "filler_bytes replaces the body, so leave body unset and use a "
                "status that has content"
            )
            raise ValueError(message)

        combined = (
            self.slow_body_interval,
            self.truncate_body_to,
            self.reset_after_bytes,
        )
        if any(value is not None for value in combined):
            message = (
                "filler_bytes does not combine with slow_body_interval, "
                "truncate_body_to or reset_after_bytes"
            )
            raise ValueError(message)

    def _validate_reset_after(self) -> None:
        if self.reset_after_bytes is None:
            return

        if self.hang or self.reset or self.truncate_body_to is not None:
            message = (
                "reset_after_bytes excludes hang, reset and truncate_body_to, "
                "so set only one"
            )
            raise ValueError(message)

        full_length = self.body_length()
        if not 0 <= self.reset_after_bytes < full_length:
            message = (
                f"reset_after_bytes must be in 0..{full_length - 1} for a body of "
                f"{full_length} bytes, got {self.reset_after_bytes}"
            )
            raise ValueError(message)

    def _validate_truncation(self) -> None:
        if self.truncate_body_to is None:
            return

        if self.chunked:
            message = (
                "truncate_body_to does not apply to chunked bodies, use cut_chunked"
            )
            raise ValueError(message)

        full_length = len(self.encode_body())
        if not 0 <= self.truncate_body_to < full_length:
            message = (
                f"truncate_body_to must be in 0..{full_length - 1} for a body of "
                f"{full_length} bytes, got {self.truncate_body_to}"
            )
            raise ValueError(message)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Build a reply whose body is ``data`` encoded as JSON."""
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            content_type="application/json",
            headers=dict(headers or {}),
        )

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        *,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Reply:
        """Build a reply with a text body."""
        return cls(status=status, body=text, content_type=content_type)

    @classmethod
    def html_error(cls, status: int) -> Reply:
        """Build an HTML error page like the ones proxies and load balancers send."""
        title = f"{status} {_reason_phrase(status)}"
        page = (
            f"<html><head><title>{title}</title></head>"
            f"<body><h1>{title}</h1></body></html>\n"
        )
        return cls(status=status, body=page, content_type="text/html; charset=utf-8")

    def encode_body(self) -> bytes:
        """Return the body as it goes on the wire, before any truncation.

        A filler body is built whole here, although the server writes it in pieces.
        """
        if self.filler_bytes is not None:
            return b"x" * self.filler_bytes

        if self.body is None:
            return b""

        if isinstance(self.body, bytes):
            return self.body

        if isinstance(self.body, str):
            return self.body.encode()

        return json.dumps(self.body).encode()

    def body_length(self) -> int:
        """Return the length of the whole body, as a Content-Length header states it."""
        if self.filler_bytes is not None:
            return self.filler_bytes

        return len(self.encode_body())

    def default_content_type(self) -> str | None:
        """Return the Content-Type sent when ``content_type`` is not set."""
        if self.content_type is not None:
            return self.content_type

        if isinstance(self.body, str):
            return "text/plain; charset=utf-8"

        if isinstance(self.body, dict | list):
            return "application/json"

        if isinstance(self.body, bytes) or self.filler_bytes is not None:
            return "application/octet-stream"

        return None


_DEFAULT_REPLY = Reply.json({"ok": True})


class _BadRequestError(Exception):
    """Request that the upstream rejects with ``status`` before closing."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Script:
    """Replies consumed one per request, the last one repeating."""

    def __init__(self, replies: tuple[Reply, ...]) -> None:
        if not replies:
            message = "a script needs at least one Reply"
            raise ValueError(message)

        self._replies = replies
        self._position = 0

    def next_reply(self) -> Reply:
        reply = self._replies[self._position]
        if self._position < len(self._replies) - 1:
            self._position += 1

        return reply


class ScriptedUpstream:
    """Loopback HTTP/1.1 server that replies to each request with the next Reply.

    The server parses request lines, headers and bodies sent with Content-Length or
    chunked transfer coding, and writes raw responses so that a reply can stall,
    truncate or drop the connection. Connections are kept alive unless the request
    or the reply sets `Connection: close`.

    ``host`` is the loopback address to listen on. Another one, such as 127.0.0.2,
    gives a second server that a redirect can name as a different host.
    """

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        if not _is_loopback(host):
            message = f"host must be a loopback address such as 127.0.0.1, got {host!r}"
            raise ValueError(message)

        self.host = host
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self._default_script: _Script | None = None
        self._routes: dict[str, _Script] = {}
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._errors: list[Exception] = []

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, 0, limit=MAX_HEADER_BYTES
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shut_down()

        if self._errors and exc is None:
            message = "scripted upstream connection handlers failed"
            raise ExceptionGroup(message, self._errors)

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        if self._port is None:
            message = (
                "ScriptedUpstream is not started. Enter it with 'async with' first."
            )
            raise RuntimeError(message)

        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def hits(self) -> int:
        """Number of requests received since start or the last ``reset()``."""
        return len(self.requests)

    def hits_for(self, path: str) -> int:
        """Count the received requests for ``path``, ignoring query strings."""
        return sum(1 for request in self.requests if request.route_path == path)

    def reset(self) -> None:
        """Clear the recorded requests and the connection count, keeping the scripts."""
        self.requests.clear()
        self.connections = 0

    def script(self, *replies: Reply) -> None:
        """Replace the default script, used for paths that have no route."""
        self._default_script = _Script(replies)

    def route(self, path: str, *replies: Reply) -> None:
        """Replace the script for ``path``, matched without the query string."""
        self._routes[path] = _Script(replies)

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        script = self._routes.get(request.route_path, self._default_script)
        if script is None:
            return _DEFAULT_REPLY

        return script.next_reply()

    async def _shut_down(self) -> None:
        if self._server is None:
            return

        self._server.close()

        # abort() drops unsent data, so a peer that stopped reading cannot hold a
        # transport open past shutdown.
        for writer in self._writers:
            writer.transport.abort()

        for task in self._handlers:
            task.cancel()

        if self._handlers:
            await asyncio.wait(self._handlers, timeout=_SHUTDOWN_TIMEOUT)

        await self._server.wait_closed()
        self._server = None

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:
            # The connection was accepted just before shutdown closed the server.
            writer.transport.abort()
            return

        peer = writer.get_extra_info("peername")
        self.connections += 1
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)

        try:
            await self._serve_requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            _logger.debug("client %s disconnected: %r", peer, exc)
        except asyncio.CancelledError:
            pass  # Shutdown cancels every handler.
        except Exception as exc:
            self._errors.append(exc)
        finally:
            # The handler must not end cancelled. In CPython 3.11.7, the done callback
            # from asyncio/streams.py calls task.exception(), which then raises
            # CancelledError, and the event loop logs that as an error.
            with contextlib.suppress(asyncio.CancelledError):
                await _close_writer(writer)

            self._writers.discard(writer)

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Each pass serves one request. The client or a reply ends the connection.
        while True:
            try:
                received = await _read_request(reader, writer)
            except _BadRequestError as exc:
                _logger.info("rejected a request with %d: %s", exc.status, exc.reason)
                await _send_rejection(reader, writer, exc)
                return

            if received is None:
                return

            request, client_keeps_alive = received
            self.requests.append(request)
            reply = self._next_reply(request)
            keep_alive = await _send_reply(
                reply, request, reader, writer, close=not client_keeps_alive
            )
            if not keep_alive:
                return


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close after flushing the send buffer, which shutdown aborts if it stalls."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[ReceivedRequest, bool] | None:
    """Read one request and whether the client keeps the connection alive.

    Return None when the client closed the connection between requests.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise

        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError(431, "request header section exceeds 64 KiB") from exc

    method, path, version, headers = _parse_head(head)
    body = await _read_body(reader, writer, headers)
    request = ReceivedRequest(method=method, path=path, headers=headers, body=body)

    # HTTP/1.1 keeps the connection open by default, HTTP/1.0 only on keep-alive.
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return request, "keep-alive" in connection

    return request, "close" not in connection


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    text = head.decode("latin-1")
    request_line, *header_lines = text.removesuffix("\r\n\r\n").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequestError(400, f"invalid request line {request_line!r}")

    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequestError(400, f"invalid header line {line!r}")

        key = name.lower()
        value = value.strip()
        # Repeated fields combine into one comma-separated list, as HTTP allows.
        headers[key] = f"{headers[key]}, {value}" if key in headers else value

    method, path, version = parts
    return method, path, version, headers


async def _read_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: Mapping[str, str],
) -> bytes:
    """Read the body framed by Content-Length or chunked transfer coding."""
    transfer_encoding = headers.get("transfer-encoding")
    length = None if transfer_encoding else _content_length(headers)
    if transfer_encoding and transfer_encoding.lower() != "chunked":
        reason = f"unsupported Transfer-Encoding {transfer_encoding!r}"
        raise _BadRequestError(501, reason)

    # A client that sends Expect: 100-continue waits for 100 before the body.
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()

    if length is None:
        return await _read_chunked_body(reader)

    return await reader.readexactly(length)


def _content_length(headers: Mapping[str, str]) -> int:
    raw_length = headers.get("content-length", "0")
    if not (raw_length.isascii() and raw_length.isdigit()):
        raise _BadRequestError(400, f"invalid Content-Length {raw_length!r}")

    length = int(raw_length)
    if length > MAX_BODY_BYTES:
        raise _BadRequestError(413, f"request body of {length} bytes exceeds 1 MiB")

    return length


async def _read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    # Each pass reads one chunk, and the size cap bounds the number of passes.
    while True:
        size_line = await reader.readuntil(b"\r\n")
        raw_size = size_line.split(b";", 1)[0].strip()
        if not _HEX_DIGITS.fullmatch(raw_size):
            raise _BadRequestError(400, f"invalid chunk size {raw_size!r}")

        size = int(raw_size, 16)

        if size == 0:
            break

        if len(body) + size > MAX_BODY_BYTES:
            raise _BadRequestError(413, "chunked request body exceeds 1 MiB")

        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequestError(400, "chunk data not followed by CRLF")

    # The trailer section ends with an empty line and shares the header size limit.
    trailer_bytes = 0
    while trailer_bytes <= MAX_HEADER_BYTES:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            return bytes(body)

        trailer_bytes += len(line)

    raise _BadRequestError(431, "chunked trailer section exceeds 64 KiB")


async def _send_rejection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, error: _BadRequestError
) -> None:
    """Send the error response, then read and drop what the client still sends.

    Closing with unread input makes the kernel send RST, and the client may lose the
    response with it, so the input is drained for a bounded time first.
    """
    body = f"{error.reason}\n".encode()
    head = _format_head(
        error.status,
        {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Connection": "close",
        },
    )
    writer.write(head + body)
    await writer.drain()
    writer.write_eof()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REJECTION_DRAIN_TIMEOUT):
            await _discard_until_eof(reader)


async def _send_reply(
    reply: Reply,
    request: ReceivedRequest,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    close: bool,
) -> bool:
    """Act out ``reply`` and return whether the connection stays open.

    ``close`` is True when the client asked to close after this response.
    """
    if reply.hang:
        await _discard_until_eof(reader)
        return False

    if reply.delay_headers:
        await asyncio.sleep(reply.delay_headers)

    if reply.reset:
        _reset_connection(writer)
        return False

    has_body = request.method != "HEAD" and reply.status not in _NO_CONTENT_STATUSES
    # A filler body is written piece by piece below instead of being built here.
    body = b"" if reply.filler_bytes is not None else reply.encode_body()
    cut_at = reply.truncate_body_to
    if cut_at is None:
        cut_at = reply.reset_after_bytes

    if not has_body:
        sent_body = b""
    elif cut_at is not None:
        sent_body = body[:cut_at]
    else:
        sent_body = body

    headers = _reply_headers(reply, reply.body_length(), close=close)
    writer.write(_format_head(reply.status, headers))

    if reply.filler_bytes is not None and has_body:
        await _write_filler(writer, reply)
    elif reply.chunked and sent_body:
        await _write_chunked(writer, sent_body, reply)
    elif sent_body:
        await _write_body(writer, sent_body, reply)

    if reply.reset_after_bytes is not None:
        # A closing socket with SO_LINGER 0 drops what it has not sent, so the
        # bytes must leave the transport first. A high-water mark of 0 makes
        # drain() wait until its buffer is empty.
        writer.transport.set_write_buffer_limits(high=0)
        await writer.drain()
        _reset_connection(writer)
        return False

    if reply.chunked and not reply.cut_chunked and request.method != "HEAD":
        writer.write(b"0\r\n\r\n")

    await writer.drain()

    cut_short = reply.truncate_body_to is not None or reply.cut_chunked
    return not (cut_short or reply.close_after or close)


def _reply_headers(reply: Reply, body_length: int, *, close: bool) -> dict[str, str]:
    """Build the response headers, letting ``reply.headers`` replace any default."""
    defaults: dict[str, str] = {}
    content_type = reply.default_content_type()
    if content_type is not None:
        defaults["Content-Type"] = content_type

    if reply.chunked:
        defaults["Transfer-Encoding"] = "chunked"
    elif reply.status not in _NO_CONTENT_STATUSES:
        defaults["Content-Length"] = str(body_length)

    defaults["Connection"] = "close" if close else "keep-alive"

    overridden = {name.lower() for name in reply.headers}
    headers = {
        name: value
        for name, value in defaults.items()
        if name.lower() not in overridden
    }
    headers.update(reply.headers)
    return headers


def _format_head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason_phrase(status)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _write_body(writer: asyncio.StreamWriter, body: bytes, reply: Reply) -> None:
    if reply.slow_body_interval is None:
        writer.write(body)
        return

    await writer.drain()
    step = reply.slow_body_bytes
    for start in range(0, len(body), step):
        await asyncio.sleep(reply.slow_body_interval)
        writer.write(body[start : start + step])
        await writer.drain()


async def _write_chunked(
    writer: asyncio.StreamWriter, body: bytes, reply: Reply
) -> None:
    if reply.slow_body_interval is None:
        writer.write(_frame_chunk(body))
        return

    await writer.drain()
    step = reply.slow_body_bytes
    for start in range(0, len(body), step):
        await asyncio.sleep(reply.slow_body_interval)
        writer.write(_frame_chunk(body[start : start + step]))
        await writer.drain()


async def _write_filler(writer: asyncio.StreamWriter, reply: Reply) -> None:
    """Write ``reply.filler_bytes`` bytes, draining after each 64 KiB piece."""
    assert reply.filler_bytes is not None
    remaining = reply.filler_bytes
    while remaining:
        piece = _FILLER_PIECE[: min(remaining, len(_FILLER_PIECE))]
        writer.write(_frame_chunk(piece) if reply.chunked else piece)
        await writer.drain()
        remaining -= len(piece)


def _frame_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _discard_until_eof(reader: asyncio.StreamReader) -> None:
    # Ends when the client closes or shutdown cancels the handler.
    while await reader.read(MAX_HEADER_BYTES):
        pass


def _reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close the socket with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    # SO_LINGER with a zero timeout makes close() discard the send buffer and send
    # RST (socket(7) on Linux).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def closed_port_url() -> str:
    """Return a loopback URL on a port that nothing listens on.

    NOTE: the port is bound and then released, so another process could take it
    before the test connects.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    return f"http://127.0.0.1:{port}"
