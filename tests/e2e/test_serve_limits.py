"""`leadops serve` against hostile clients: a 200 MB unauthenticated body (chunked, and
with a large Content-Length) is answered 4xx at once without the server's memory growing,
and a client that sends its request head too slowly is disconnected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

HUGE = 200 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
FORM_SECRET = "serve-limits-form-secret-0123456789"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def memory_kb(self, field: str) -> int:
        """VmHWM (peak resident memory) or VmRSS of the server process, in kB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.process.pid}/status")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# One test process runs the module: its server is started once.
pytestmark = pytest.mark.xdist_group("serve_limits")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADOPS_")}
    env.update(
        PYTHONPATH=str(ROOT),  # the server runs the code under test
        LEADOPS_CONFIG_FILE=str(ROOT / "config" / "leadops.toml"),
        LEADOPS_DATA_DIR=str(home / "data"),
        LEADOPS_CONFIG_DIR=str(ROOT / "config"),
        LEADOPS_TEMPLATES_DIR=str(ROOT / "templates"),
        LEADOPS_SECRET_KEY="serve-limits-secret-key-0123456789",
        LEADOPS_SENDGRID_WEBHOOK_PUBLIC_KEY=(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpV"
            "KS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
        ),
        LEADOPS_SITE_EVENTS_SECRET="serve-limits-site-secret",
        LEADOPS_FORM_CONTACT_US_SECRET=FORM_SECRET,
        LEADOPS_FORM_WEBINAR_SECRET=FORM_SECRET,
    )
    leadops = [sys.executable, "-c", "from leadops.cli import main; main()"]
    subprocess.run([*leadops, "init"], env=env, cwd=home, check=True, capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        [*leadops, "serve", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = time.monotonic() + 30
    while time.monotonic() < ready:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if probe.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("leadops serve did not start")
    yield Server(process, port)
    process.terminate()
    process.wait(timeout=20)


def _post_huge(server: Server, path: str, *, chunked: bool, headers: str = "") -> tuple[int, float]:
    """POST a 200 MB body as fast as the server takes it; return the status and how long
    after the request started the answer arrived."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{headers}{length}\r\n\r\n"
    )
    frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK

    def send() -> None:
        try:
            sock.sendall(head.encode())
            for _ in range(HUGE // len(CHUNK)):
                sock.sendall(frame)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            return  # the server closed the connection: what it should do

    started = time.monotonic()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = sock.recv(4096)
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=10)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1]), elapsed


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/forms/lead?form=contact-us", ""),  # a secret form: refused before the body
        ("/forms/lead?form=webinar", "X-Leadops-Signature: sha256=00\r\n"),  # capped read
        ("/webhooks/sendgrid", ""),
        ("/events/site", ""),
        ("/u/not-a-token", ""),
    ],
)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_200_mb_unauthenticated_post_is_refused_at_once_without_memory_growth(
    server: Server, path: str, headers: str, chunked: bool
) -> None:
    before = server.memory_kb("VmHWM")
    status, elapsed = _post_huge(server, path, chunked=chunked, headers=headers)
    assert 400 <= status < 500
    assert elapsed < 1.0, f"answered after {elapsed:.2f} s"
    grown_mb = (server.memory_kb("VmHWM") - before) / 1024
    assert grown_mb < 50, f"peak memory grew by {grown_mb:.0f} MB"
    assert server.process.poll() is None


def _response(sock: socket.socket) -> bytes:
    """Read one response of /healthz."""
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    return answer


def test_slow_and_idle_clients_are_disconnected(server: Server) -> None:
    from leadops.web.guard import BODY_DEADLINE_SECONDS
    from leadops.web.server import HEADER_TIMEOUT_SECONDS, KEEP_ALIVE_SECONDS

    address = ("127.0.0.1", server.port)
    with (
        socket.create_connection(address, timeout=30) as slow_head,
        socket.create_connection(address, timeout=30) as slow_body,
        socket.create_connection(address, timeout=30) as idle,
    ):
        started = time.monotonic()
        slow_head.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        slow_body.sendall(
            b"POST /events/site HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
        )
        for _ in range(2):  # a kept-alive connection serves requests, then idles out
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert _response(idle).startswith(b"HTTP/1.1 200")

        assert idle.recv(100) == b""
        assert time.monotonic() - started < KEEP_ALIVE_SECONDS + 3
        assert slow_head.recv(100) == b""
        waited = time.monotonic() - started
        assert HEADER_TIMEOUT_SECONDS - 1 <= waited < HEADER_TIMEOUT_SECONDS + 5
        answer = slow_body.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        waited = time.monotonic() - started
        assert BODY_DEADLINE_SECONDS - 1 <= waited < BODY_DEADLINE_SECONDS + 5
