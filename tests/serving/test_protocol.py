"""The hardened protocol's transport, on a real socket and a real asyncio transport: what one turn of the
event loop writes (a response's head and body) goes out in one system call, and nothing is lost on close."""
import asyncio
import socket
import types

from ml_service.serving.protocol import _Transport


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
