"""The hand-off page in a real headless Chromium at phone size, served by uvicorn: from the
emailed link a rep acknowledges, logs a call and closes won with an amount, and the
database says so after each step. Chromium is driven through the DevTools protocol.

With HANDOFF_SCREENSHOTS=<folder> the phone-size screenshots before and after closing are
saved there (docs/img holds the ones the sales guide shows)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from base64 import b64decode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.models import Lead
from leadops.runtime import load_escalation_runtime
from leadops.sales.escalation import escalate
from leadops.web.app import create_app
from tests.conftest import make_settings
from tests.integration.test_escalation import NOW, REASONS, ROUTING, add_lead, get
from tests.integration.test_handoff_page import activities, hand_raise

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
websockets = pytest.importorskip("websockets", reason="the websockets package drives Chromium")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no headless Chromium at {CHROMIUM}"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(profile: Path) -> Iterator[str]:
    """A headless Chromium; yields the DevTools websocket URL of its page."""
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        browser = ""
        deadline = time.monotonic() + 30
        while not browser:
            line = process.stderr.readline()
            assert line or process.poll() is None, "Chromium exited"
            assert time.monotonic() < deadline, "Chromium did not start"
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            browser = found.group(1) if found else ""
        port = re.search(r":(\d+)/", browser)
        assert port
        targets = httpx.get(f"http://127.0.0.1:{port.group(1)}/json/list").json()
        yield next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    finally:
        process.terminate()
        process.wait(timeout=10)


class Page:
    """Just enough of the DevTools protocol: commands, and waiting for a page load."""

    def __init__(self, socket_: Any) -> None:
        self.socket = socket_
        self.ids = itertools.count(1)
        self.loads = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if message.get("method") == "Page.loadEventFired":
                self.loads += 1
            if message.get("id") == ident:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def loaded(self, count: int) -> None:
        """Wait until `count` page loads have happened in all."""
        while self.loads < count:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if message.get("method") == "Page.loadEventFired":
                self.loads += 1

    async def run(self, script: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=script, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def tap(self, action: str) -> None:
        """Press the button of the page's `action` form, as a finger would."""
        box = await self.run(
            f"(() => {{ const f = document.querySelector('input[value={action}]').form;"
            " const d = f.closest('details'); if (d) d.open = true;"
            " const b = f.querySelector('button'); b.scrollIntoView({block: 'center'});"
            " const r = b.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2, r.height]; })()"
        )
        x, y, height = box
        assert height >= 44  # a tap target a thumb hits
        before = self.loads
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )
        await self.loaded(before + 1)

    async def screenshot(self, path: Path) -> None:
        """The whole page, at phone width."""
        await self.run("window.scrollTo(0, 0)")
        height = await self.run("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": PHONE["width"], "height": height, "scale": 1}
        shot = await self.send(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
        )
        path.write_bytes(b64decode(shot["data"]))


def test_a_rep_acts_from_the_emailed_link_in_a_phone_browser(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    port = free_port()
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = make_settings(
        tmp_path,
        routing_file=routing,
        public_url=f"http://127.0.0.1:{port}",
        database_url=str(sqlite_engine.url),
    )
    runtime = load_escalation_runtime(settings, engine=sqlite_engine)
    lead_id = add_lead(
        sqlite_engine,
        "olivia@acme.example",
        first_name="Olivia",
        job_title="COO",
        industry="logistics",
        company_size=120,
        source="website",
        timezone="Europe/London",
    )
    hand_raise(sqlite_engine, lead_id)
    result = escalate(
        sqlite_engine,
        lead_id,
        "demo_requested",
        "e1",
        80,
        REASONS,  # type: ignore[arg-type]
        NOW,
        runtime=runtime,
    )
    mail = next((settings.resolved_outbox_dir / "email" / "escalations" / "rep").glob("*.eml"))
    link = re.search(r"(http://127\.0\.0\.1:\d+/escalations/ack/[\w.-]+)", mail.read_text())
    assert link and link.group(1).startswith(f"http://127.0.0.1:{port}/")
    escalation_id = result.escalation_id
    app = create_app(settings, sqlite_engine, SimulatedClock(NOW + timedelta(minutes=4)))
    shots = Path(os.environ.get("HANDOFF_SCREENSHOTS") or tmp_path)

    async def drive(url: str) -> None:
        async with websockets.connect(url, max_size=2**26) as socket_:
            page = Page(socket_)
            await page.send("Page.enable")
            await page.send("Emulation.setDeviceMetricsOverride", **PHONE)
            await page.send("Page.navigate", url=link.group(1))
            await page.loaded(1)
            assert "Olivia" in await page.run("document.body.innerText")
            wide = await page.run("document.documentElement.scrollWidth")
            assert wide <= PHONE["width"]  # one column: nothing to scroll sideways
            assert get(sqlite_engine, escalation_id).status == "open"  # the visit changed nothing

            await page.tap("acknowledge")
            assert "Acknowledged" in await page.run("document.body.innerText")
            assert get(sqlite_engine, escalation_id).acknowledged_by == "ana"

            await page.tap("contact")  # the first channel offered is a call
            escalation = get(sqlite_engine, escalation_id)
            contact = (escalation.first_contact_channel, escalation.first_contact_by)
            assert contact == ("call", "ana")
            await page.screenshot(shots / "handoff-before.png")

            await page.run("document.querySelector('#amount').value = '1250.50'")
            await page.tap("won")
            text = await page.run("document.body.innerText")
            assert "Closed won" in text and "1,250.50" in text
            await page.screenshot(shots / "handoff-after.png")

    with serving(app, port), chromium(tmp_path / "profile") as url:
        asyncio.run(drive(url))

    escalation = get(sqlite_engine, escalation_id)
    assert (escalation.status, escalation.amount_cents, escalation.closed_by) == (
        "closed_won",
        125050,
        "ana",
    )
    assert [row[0] for row in activities(sqlite_engine, escalation_id)] == [
        "acknowledged",
        "contacted",
        "won",
    ]
    from sqlmodel import Session

    with Session(sqlite_engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.lifecycle_stage == "customer"
    assert (shots / "handoff-after.png").stat().st_size > 10_000
