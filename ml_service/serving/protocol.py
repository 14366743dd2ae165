"""uvicorn's httptools protocol with the limits a server on the open internet needs.

- **Request head and body limits**: a request line plus headers over max_header_bytes gets a 431; a head not
  complete within header_timeout_s of the connection opening (or of the previous response) gets a 408, or a
  silent close when nothing was sent (slowloris); a body not complete within body_timeout_s of its head gets
  a 408; a keep-alive connection idle for keep_alive_s after a response is closed. One sweep a second checks
  every connection (no timer per request: uvicorn's own keep-alive timer, armed and cancelled on every
  request, is not used), so a timeout fires up to a second late.
- **A connection cap that never locks out a new client**: past max_connections (and never past the open-file
  limit less a reserve) a new connection evicts the one that has waited longest for a request head; a
  connection whose request is being served is never evicted.
- **Lingering close**: when a response closes the connection before the request body was read (a 413),
  the server half-closes (FIN after the response) and reads and discards what the client still sends for a
  little while, so the client reads the 413 instead of a connection reset.

The limits come from the ScoringApp the server hosts (its settings), found through any middleware.
"""
from __future__ import annotations

import resource
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ml_service.serving.app import unwrap

FD_RESERVE = 64  # files a worker keeps open besides connections: model, logs, collector, libraries
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
SWEEP_SECONDS = 1.0


def _sweep(loop, connections: set, state) -> None:
    """Time out the connections whose request head or body is late; then again in SWEEP_SECONDS."""
    now = time.monotonic()
    for connection in list(connections):
        check = getattr(connection, "check_deadlines", None)
        if check is not None:
            check(now)
    state.mlops_sweeper = loop.call_later(SWEEP_SECONDS, _sweep, loop, connections, state)


def connection_cap(max_connections: int) -> int:
    """max_connections, lowered to fit the open-file limit of this process."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - FD_RESERVE))


class _Transport:
    """The connection's transport, whose close() lingers while the request body is still coming, and whose
    writes within one turn of the event loop go out in one system call (uvicorn writes a response's head and
    body separately: two sends a request otherwise)."""

    def __init__(self, transport, protocol: "HardenedProtocol"):
        self._transport = transport
        self._protocol = protocol
        self._pending: list | None = None
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.set_protocol = transport.set_protocol

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._protocol.loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        """Send what was written in this turn of the loop (called by the loop, and before any close)."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        if self._protocol.reading_request and not self._transport.is_closing():
            self._protocol.linger()
        else:
            self._transport.close()


class HardenedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus head size and time limits, a connection cap with eviction, lingering close."""

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        settings = unwrap(config.loaded_app).settings
        self.max_head = settings.max_header_bytes
        self.head_timeout = settings.header_timeout_s
        self.keep_alive = min(settings.keep_alive_s, settings.header_timeout_s)
        self.idle_timeout = self.head_timeout  # how long waiting_since may last with nothing received
        self.body_timeout = settings.body_timeout_s
        self.max_connections = connection_cap(settings.max_connections)
        self.waiting_since: float | None = None  # waiting for a request head since (monotonic)
        self.reading_request = False  # a request's head or body is still arriving
        self._head_bytes = 0
        self._head_too_large = False
        self.body_since: float | None = None  # the request head arrived, its body is still coming, since
        self._lingering = 0  # bytes discarded while lingering; -1 when not lingering

    # --- connection life --------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._lingering = -1
        super().connection_made(_Transport(transport, self))
        self.waiting_since = time.monotonic()
        if getattr(self.server_state, "mlops_sweeper", None) is None:
            _sweep(self.loop, self.connections, self.server_state)
        if len(self.connections) > self.max_connections:
            self._evict()

    def connection_lost(self, exc) -> None:
        self.waiting_since = self.body_since = None
        self.reading_request = False
        super().connection_lost(exc)

    def _evict(self) -> None:
        waiting = [c for c in self.connections if getattr(c, "waiting_since", None) is not None and c is not self]
        victim = min(waiting, key=lambda c: c.waiting_since, default=self)
        victim.waiting_since = None
        victim.transport.flush()
        victim.transport._transport.close()

    # --- request head limits ----------------------------------------------------------------------------
    def check_deadlines(self, now: float) -> None:
        """Called by the sweep: a 408 (or a silent close) when the request head or body is late."""
        if self.transport.is_closing():
            return
        if self.waiting_since is not None and now - self.waiting_since > (
                self.head_timeout if self.reading_request else self.idle_timeout):
            self.waiting_since = None
            if self.reading_request:
                self._refuse(408, b'{"error":"request head not received in time"}')
            else:
                self.transport.flush()
                self.transport._transport.close()
        elif self.body_since is not None and now - self.body_since > self.body_timeout and self.reading_request:
            self.body_since = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                cycle.disconnected = True  # the app's receive() gets http.disconnect; its answer is dropped
                cycle.message_event.set()
                self._refuse(408, b'{"error":"request body not received in time"}')

    def _refuse(self, status: int, body: bytes) -> None:
        """Answer status without the app (the request head is unusable), then close lingering."""
        self.transport.write(b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                                       b"content-length: ", str(len(body)).encode(), b"\r\n",
                                       b"connection: close\r\n\r\n", body]))
        self.reading_request = True
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport._transport.close()
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:  # the parser stopped at on_url / on_header below
            self._refuse(431, b'{"error":"request line and headers are over the limit of %d bytes"}'
                         % self.max_head)
        else:
            super().send_400_response(msg)

    def _head_over_limit(self) -> None:
        self._head_too_large = True
        raise ValueError("request head too large")  # httptools stops parsing with a callback error

    def on_message_begin(self) -> None:
        self.reading_request = True
        self._head_bytes = 0
        super().on_message_begin()

    # on_url and on_header do what uvicorn's do (without calling them: a call less a header) and count the head
    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.max_head:
            self._head_over_limit()
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_head:
            self._head_over_limit()
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.waiting_since = None
        self.body_since = time.monotonic()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.reading_request = False
        self.body_since = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, less its keep-alive timer: the sweep closes the connection if it stays idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next request's head is already here: serve it
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.waiting_since = time.monotonic()
            self.idle_timeout = self.keep_alive

    # --- lingering close --------------------------------------------------------------------------------
    def linger(self) -> None:
        """Half-close after the response, discard what the client still sends, close after LINGER_SECONDS."""
        self.waiting_since = self.body_since = None
        self._lingering = 0
        self.transport.flush()
        transport = self.transport._transport
        try:
            transport.resume_reading()
            transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            transport.close()
            return
        self.loop.call_later(LINGER_SECONDS, transport.close)
