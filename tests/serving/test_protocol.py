"""The hardened protocol (protocol.py) in process, on real sockets and a real asyncio transport: what one turn of
the event loop writes goes out in one system call; the request head limit, the head, body and keep-alive
timeouts and the connection cap, each on both sides of its boundary."""
import asyncio
import socket
import types

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from ml_service.serving.app import ScoringApp
from ml_service.serving.config import ServingSettings
from ml_service.serving.protocol import HardenedProtocol, _Transport
from tests.support.rows_score import save_regressor


def test_writes_of_one_loop_turn_leave_in_one_call_and_close_sends_what_is_pending():
    async def main():
        ours, client = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        sent, write = [], transport.write
        transport.write = lambda data: (sent.append(bytes(data)), write(data))
        wrapped = _Transport(transport, types.SimpleNamespace(loop=loop, reading_request=False))
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"{}")
        assert sent == []  # held until the loop turns
        await asyncio.sleep(0)
        assert sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        wrapped.write(b"last")
        wrapped.close()  # a response that closes its connection: sent before the close
        assert sent[-1] == b"last" and transport.is_closing()
        await asyncio.sleep(0.05)
        client.settimeout(5)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        client.close()
        return received

    assert asyncio.run(main()) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}last"


# --- the hardened protocol in process: a real HttpToolsProtocol on a socket pair, the app behind it ------------
#
# The deadlines are checked by calling check_deadlines(now) with the moment to check (what the once-a-second sweep
# does with the clock), so each timeout is tested on both sides of its boundary without waiting for it.

HEAD_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE, MAX_HEAD = 10.0, 30.0, 5.0, 1024
BODY = b'{"data": [[1,2,3,4,5,6,7,8,9,10]]}'
REQUEST = (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(BODY) + BODY)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_regressor(tmp_path_factory.mktemp("regressor"))


def hosted(model_dir, **limits) -> ScoringApp:
    settings = {"header_timeout_s": HEAD_TIMEOUT, "body_timeout_s": BODY_TIMEOUT, "keep_alive_s": KEEP_ALIVE,
                "max_header_bytes": MAX_HEAD, **limits}
    return ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                      log_requests=False, **settings))


class Server:
    """HardenedProtocol connections to one app on the running loop; open() gives (protocol, client socket)."""

    def __init__(self, app: ScoringApp):
        self.loop = asyncio.get_running_loop()
        self.config = uvicorn.Config(app, http=HardenedProtocol, lifespan="off", log_level="warning")
        self.config.load()
        self.state = ServerState()
        self.clients = []

    async def open(self):
        ours, client = socket.socketpair()
        client.setblocking(False)
        self.clients.append(client)
        _, protocol = await self.loop.connect_accepted_socket(
            lambda: HardenedProtocol(self.config, self.state, {}, self.loop), ours)
        return protocol, client

    async def send(self, client, data: bytes) -> None:
        await self.loop.sock_sendall(client, data)
        for _ in range(20):  # let the protocol read it and the app answer (a few turns of the loop, no timer)
            await asyncio.sleep(0)

    async def received(self, client) -> bytes:
        """What the server sent until it closed the connection."""
        chunks = []
        while chunk := await asyncio.wait_for(self.loop.sock_recv(client, 65536), 30):
            chunks.append(chunk)
        return b"".join(chunks)

    async def answer(self, client) -> bytes:
        """One whole response (head and body, by its content-length)."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += await asyncio.wait_for(self.loop.sock_recv(client, 65536), 30)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        while len(body) < length:
            body += await asyncio.wait_for(self.loop.sock_recv(client, 65536), 30)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        sweeper = getattr(self.state, "mlops_sweeper", None)
        if sweeper is not None:
            sweeper.cancel()
        for connection in list(self.state.connections):
            connection.transport._transport.close()
        for client in self.clients:
            client.close()


def serve(app, scenario):
    """Run scenario(server) on a new event loop."""
    async def main():
        server = Server(app)
        try:
            return await scenario(server)
        finally:
            server.close()
            await asyncio.sleep(0)
    return asyncio.run(main())


def pending(client) -> bytes | None:
    """What the server sent so far (b"" when it closed the connection), None when nothing and still open."""
    try:
        return client.recv(65536)
    except BlockingIOError:
        return None


def test_a_request_is_served_through_the_hardened_protocol(model_dir):
    async def scenario(server):
        protocol, client = await server.open()
        await server.send(client, REQUEST)
        return await server.answer(client)

    answer = serve(hosted(model_dir), scenario)
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"result":[' in answer


def _head(pad: int, path: bytes = b"/v2/health/live") -> tuple[bytes, int]:
    """A GET request head and the bytes the protocol counts of it (URL, and name + value + 4 a header)."""
    headers = [(b"Host", b"x"), (b"X-Pad", b"a" * pad)]
    counted = len(path) + sum(len(name) + len(value) + 4 for name, value in headers)
    head = b"GET " + path + b" HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"
    return head, counted


@pytest.mark.parametrize("over", [0, 1])
def test_a_head_of_exactly_max_header_bytes_is_served_and_one_byte_more_is_431(model_dir, over):
    head, counted = _head(0)
    head, counted = _head(MAX_HEAD - counted + over)
    assert counted == MAX_HEAD + over

    async def scenario(server):
        _, client = await server.open()
        await server.send(client, head)
        return await server.received(client) if over else await server.answer(client)

    answer = serve(hosted(model_dir), scenario)
    assert answer.startswith(b"HTTP/1.1 431 " if over else b"HTTP/1.1 200 "), answer[:80]


def test_a_long_url_counts_toward_the_head_limit(model_dir):
    path = b"/v2/health/live?" + b"q" * 2000

    async def scenario(server):
        _, client = await server.open()
        await server.send(client, b"GET " + path + b" HTTP/1.1\r\n\r\n")
        return await server.received(client)

    assert serve(hosted(model_dir), scenario).startswith(b"HTTP/1.1 431 ")


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 600), min_size=1, max_size=4))
def test_a_head_is_refused_exactly_when_its_counted_bytes_pass_the_limit(hosted_app, sizes):
    headers = [(b"Host", b"x")] + [(b"X-H%d" % i, b"v" * size) for i, size in enumerate(sizes)]
    path = b"/v2/health/live"
    counted = len(path) + sum(len(name) + len(value) + 4 for name, value in headers)
    head = b"GET " + path + b" HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"

    async def scenario(server):
        _, client = await server.open()
        await server.send(client, head)
        return await server.received(client) if counted > MAX_HEAD else await server.answer(client)

    answer = serve(hosted_app, scenario)
    assert answer.startswith(b"HTTP/1.1 431 " if counted > MAX_HEAD else b"HTTP/1.1 200 "), counted


@pytest.fixture(scope="module")
def hosted_app(model_dir):
    return hosted(model_dir)


def test_a_head_not_complete_at_the_head_timeout_is_kept_and_just_after_gets_a_408(model_dir):
    async def scenario(server):
        protocol, client = await server.open()
        opened = protocol.waiting_since
        await server.send(client, b"POST /score HTTP/1.1\r\nHost: x\r\n")  # half a head, then nothing
        protocol.check_deadlines(opened + HEAD_TIMEOUT)
        await server.send(client, b"")
        before = pending(client)
        protocol.check_deadlines(opened + HEAD_TIMEOUT + 0.001)
        return before, await server.received(client)

    before, after = serve(hosted(model_dir), scenario)
    assert before is None  # nothing sent, still open at the deadline itself
    assert after.startswith(b"HTTP/1.1 408 ") and b"request head not received in time" in after


def test_a_connection_that_sends_nothing_is_closed_silently_after_the_head_timeout(model_dir):
    async def scenario(server):
        protocol, client = await server.open()
        opened = protocol.waiting_since
        protocol.check_deadlines(opened + HEAD_TIMEOUT)
        await server.send(client, b"")
        before = pending(client)
        protocol.check_deadlines(opened + HEAD_TIMEOUT + 0.001)
        return before, await server.received(client)

    assert serve(hosted(model_dir), scenario) == (None, b"")


def test_a_body_not_complete_at_the_body_timeout_is_kept_and_just_after_gets_a_408(model_dir):
    async def scenario(server):
        protocol, client = await server.open()
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        await server.send(client, head % len(BODY) + BODY[:10])
        started = protocol.body_since
        protocol.check_deadlines(started + HEAD_TIMEOUT + 1)  # the head's timeout is not the body's
        protocol.check_deadlines(started + BODY_TIMEOUT)
        await server.send(client, b"")
        before = pending(client)
        protocol.check_deadlines(started + BODY_TIMEOUT + 0.001)
        return before, await server.received(client)

    before, after = serve(hosted(model_dir), scenario)
    assert before is None
    assert after.startswith(b"HTTP/1.1 408 ") and b"request body not received in time" in after


def test_a_body_completed_before_its_timeout_is_answered(model_dir):
    async def scenario(server):
        protocol, client = await server.open()
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        await server.send(client, head % len(BODY) + BODY[:10])
        protocol.check_deadlines(protocol.body_since + BODY_TIMEOUT)
        await server.send(client, BODY[10:])
        return await server.answer(client)

    assert serve(hosted(model_dir), scenario).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("keep_alive, idle", [(KEEP_ALIVE, KEEP_ALIVE), (HEAD_TIMEOUT + 5, HEAD_TIMEOUT)])
def test_an_idle_keep_alive_connection_is_kept_until_its_time_and_closed_just_after(model_dir, keep_alive, idle):
    """The idle time after a response is the keep-alive time, never longer than the head timeout."""
    async def scenario(server):
        protocol, client = await server.open()
        await server.send(client, REQUEST)
        first = await server.answer(client)
        answered = protocol.waiting_since
        protocol.check_deadlines(answered + idle)
        await server.send(client, REQUEST)  # still open: a second request on it is served
        second = await server.answer(client)
        answered = protocol.waiting_since
        protocol.check_deadlines(answered + idle)
        await server.send(client, b"")
        before = pending(client)
        protocol.check_deadlines(answered + idle + 0.001)
        return first, second, before, await server.received(client)

    first, second, before, after = serve(hosted(model_dir, keep_alive_s=keep_alive), scenario)
    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")
    assert before is None and after == b""


def test_past_the_connection_cap_the_connection_waiting_longest_for_a_head_is_evicted(model_dir):
    async def scenario(server):
        served, served_client = await server.open()
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        await server.send(served_client, head % len(BODY) + BODY[:5])  # being served: its body is coming
        oldest, oldest_client = await server.open()
        newer, newer_client = await server.open()
        assert served.waiting_since is None and oldest.waiting_since < newer.waiting_since
        newest, newest_client = await server.open()  # one past the cap of 3
        await server.send(newest_client, b"")
        clients = {"served": served_client, "oldest": oldest_client, "newer": newer_client, "newest": newest_client}
        states = {name: pending(client) for name, client in clients.items()}
        await server.send(served_client, BODY[5:])
        return states, await server.answer(served_client)

    states, answer = serve(hosted(model_dir, max_connections=3), scenario)
    assert states == {"served": None, "oldest": b"", "newer": None, "newest": None}
    assert answer.startswith(b"HTTP/1.1 200 ")  # the connection being served was never a candidate
