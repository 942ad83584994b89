"""A minimal keep-alive HTTP/1.1 stand-in for SendGrid and Twilio: the floor's server.

It answers every request at once and spends as little CPU as a Python server can: no
validation, no logging, no fault injection (the validating fakes in leadops.testing.fakes
are for the correctness and fault runs). POST /v3/mail/send gets 202 with an
X-Message-Id; POST .../Messages.json gets 201 with a message SID; anything else 404.

Run `python -m bench.standin`: it prints its base URL on the first line of stdout and
serves until terminated. `served` counts the requests answered (GET /_standin/count).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import sys

_IDS = itertools.count(1)


def _answer(method: bytes, target: bytes, served: int) -> bytes:
    if target == b"/_standin/count":
        body = str(served).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    if method == b"POST" and target == b"/v3/mail/send":
        return b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: sm%d\r\n\r\n" % next(
            _IDS
        )
    if method == b"POST" and target.endswith(b"/Messages.json"):
        body = b'{"sid": "SM%032d", "status": "queued"}' % next(_IDS)
        return (
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class StandIn(asyncio.Protocol):
    served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            marker = head.lower().find(b"\r\ncontent-length:")
            if marker >= 0:
                stop = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            buffer = buffer[end + 4 + length :]
            StandIn.served += 1
            out.append(_answer(method, target, StandIn.served))
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))


async def serve() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StandIn, sock=sock)
    port = sock.getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
