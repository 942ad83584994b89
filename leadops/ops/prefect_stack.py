"""Drive Prefect's own CLI: deploy leadops, or run a whole local stack (server, work pool,
deployments, worker, and where asked the fast path's task worker and `leadops serve`) for
a smoke check, a benchmark or screenshots.

Every command here is the non-interactive one the README documents; `leadops deploy` uses
`deploy_all`, and `LocalStack` starts a private server (its own PREFECT_HOME and port)
and stops every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

WORK_POOL = "leadops"

# Defaults for the CLI's own flow runs, set before Prefect is first imported; the
# environment wins. The first ephemeral server on a new PREFECT_HOME runs migrations,
# which can take longer than Prefect's default 20 s on a busy 2-core machine.
CLI_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "leadops",
}


class PrefectCommandError(RuntimeError):
    """A Prefect CLI command failed; the message carries its output."""


def prefect_executable() -> str:
    """The `prefect` command installed beside this Python."""
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else "prefect"


def leadops_executable() -> str:
    """The `leadops` command installed beside this Python."""
    candidate = Path(sys.executable).with_name("leadops")
    return str(candidate) if candidate.exists() else "leadops"


def run_prefect(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> str:
    """Run `prefect ARGS`; raise PrefectCommandError with its output when it fails."""
    done = subprocess.run(  # noqa: S603  # our own executable and arguments
        [prefect_executable(), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise PrefectCommandError(
            f"`prefect {' '.join(args)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def deploy_all(*, env: Mapping[str, str], cwd: Path, prefect_file: str = "prefect.yaml") -> str:
    """Create (or update) the process work pool, then deploy every entry of `prefect_file`."""
    if not (cwd / prefect_file).is_file():
        raise PrefectCommandError(f"no {prefect_file} in {cwd}")
    out = run_prefect(
        ["work-pool", "create", "--type", "process", WORK_POOL, "--overwrite"], env=env, cwd=cwd
    )
    args = ["--no-prompt", "deploy", "--all"]
    if prefect_file != "prefect.yaml":
        args += ["--prefect-file", prefect_file]
    return out + run_prefect(args, env=env, cwd=cwd, timeout=180)


def cli_prefect_environment(environ: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """The Prefect variables the CLI adds to `environ` before Prefect is imported.

    Flow runs started by the CLI without a server keep their state in
    `<data_dir>/prefect`, not in `~/.prefect` shared with every other project, unless
    PREFECT_API_URL or PREFECT_HOME is set. Telemetry is off unless set otherwise.
    """
    added = {k: v for k, v in CLI_PREFECT_DEFAULTS.items() if k not in environ}
    if not environ.get("PREFECT_API_URL") and not environ.get("PREFECT_HOME"):
        added["PREFECT_HOME"] = str((data_dir / "prefect").resolve())
    return added


def start_ephemeral_server() -> None:
    """Start Prefect's temporary local server now, shielded from Ctrl-C, when no API is set.

    A flow run without PREFECT_API_URL starts this server as a child process in the
    terminal's process group, so Ctrl-C killed it together with leadops: the engine then
    retried for minutes to report the interrupted run (and the log worker to drain its
    queue) to a server that was gone, and the run stayed Running. Started here with
    SIGINT blocked, the child inherits the blocked signal: Ctrl-C reaches leadops only,
    the run is recorded Crashed and its logs are sent, and Prefect stops the server at
    exit (SIGTERM). The flow run then uses this server (Prefect keeps one per process).
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        SubprocessASGIServer().start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# A Prefect server on SQLite answers 503 when its database is busy (one writer at a time).
API_ATTEMPTS = 5
BUSY_SERVER = ("database is locked", "503", "Service Unavailable")


def exit_after_interrupt(code: int, grace: float) -> None:
    """After Ctrl-C has ended a flow run: exit with `code` within `grace` seconds.

    Prefect's exit work (sending queued logs and events, stopping the temporary server)
    runs first; on a machine too busy for it to finish in time, or at a second Ctrl-C,
    the temporary server is asked to stop and the process exits at once (a SIGTERM
    then does the same).
    """

    def force(*_: object) -> None:
        stop_ephemeral_server()
        os._exit(code)

    signal.signal(signal.SIGINT, force)
    signal.signal(signal.SIGTERM, force)
    timer = threading.Timer(grace, force)
    timer.daemon = True
    timer.start()


def stop_ephemeral_server() -> None:
    """SIGTERM Prefect's temporary server of this process, if one runs (it stops itself)."""
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        process = getattr(server, "server_process", None)
        if process is not None and process.poll() is None:
            process.terminate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalStack:
    """A private Prefect server and process worker for the project in `project`."""

    home: Path  # PREFECT_HOME, and where process logs go
    project: Path  # folder with prefect.yaml, flows/, config/, templates/
    extra_env: dict[str, str] = field(default_factory=dict)
    ui: bool = False
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[Any]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LEADOPS_"))}
        return (
            base
            | {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true" if self.ui else "false",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
                "PREFECT_LOGGING_EXTRA_LOGGERS": "leadops",
                "LEADOPS_HOME": str(self.project),
            }
            | self.extra_env
        )

    def _spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        executable: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(  # noqa: S603  # our own executable
            [executable or prefect_executable(), *args],
            env=self.env | dict(env or {}),
            cwd=self.project,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends its children too
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start_server(self, timeout: float = 90) -> None:
        """Start `prefect server start` and wait until /api/health answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._spawn("server", ["server", "start"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.processes["server"]
            if server.poll() is not None:
                raise PrefectCommandError(
                    f"prefect server exited {server.returncode}:\n{self.log_tail('server')}"
                )
            try:
                if requests.get(f"{self.api_url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise PrefectCommandError(
            f"prefect server did not answer within {timeout:.0f} s:\n{self.log_tail('server')}"
        )

    def deploy(self, prefect_file: str = "prefect.yaml") -> str:
        """Deploy `prefect_file`; again (it is idempotent) when the server was too busy."""
        for attempt in range(3):
            try:
                return deploy_all(env=self.env, cwd=self.project, prefect_file=prefect_file)
            except PrefectCommandError as exc:
                if attempt == 2 or not any(busy in str(exc) for busy in BUSY_SERVER):
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    def start_worker(self) -> None:
        self._spawn("worker", ["worker", "start", "--pool", WORK_POOL])

    def start_handoff_worker(self) -> None:
        """`leadops handoff-worker`: the fast path's task worker."""
        self._spawn("handoff-worker", ["handoff-worker"], executable=leadops_executable())

    def start_app(
        self, env: Mapping[str, str] | None = None, timeout: float = 60, port: int | None = None
    ) -> str:
        """`leadops serve` on a free port (its fast path submits to this server); returns
        its base URL once /healthz answers."""
        port = port or free_port()
        base = f"http://127.0.0.1:{port}"
        self._spawn("app", ["serve", "--port", str(port)], executable=leadops_executable(), env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app = self.processes["app"]
            if app.poll() is not None:
                raise PrefectCommandError(
                    f"leadops serve exited {app.returncode}:\n{self.log_tail('app')}"
                )
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    return base
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise PrefectCommandError(
            f"leadops serve did not answer within {timeout:.0f} s:\n{self.log_tail('app')}"
        )

    def stop_process(self, name: str, timeout: float = 15) -> None:
        """SIGTERM one process group started here (e.g. the worker) and wait for it.

        A worker turns the first SIGTERM into a SIGINT, which a background worker does
        not act on; it ends at the second.
        """
        process = self.processes.pop(name)
        for _ in range(2):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the server's REST API; a 503 (its SQLite database busy) is tried again."""
        for attempt in range(API_ATTEMPTS):
            response = requests.request(method, f"{self.api_url}{path}", timeout=30, **kwargs)
            if response.status_code != 503 or attempt == API_ATTEMPTS - 1:
                break
            time.sleep(1 + attempt)
        response.raise_for_status()
        return response.json() if response.content else None

    def run_deployment(self, name: str, parameters: dict[str, Any] | None = None) -> str:
        """Create a flow run of deployment `flow/deployment`; returns its id."""
        deployment = self.api("GET", f"/deployments/name/{name}")
        run = self.api(
            "POST",
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": parameters or {}},
        )
        return str(run["id"])

    def wait_for_run(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the flow run reaches a final state; returns the flow run."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api("GET", f"/flow_runs/{run_id}")
            state = (run.get("state") or {}).get("type")
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(1)

    def stop(self) -> None:
        """SIGTERM every process group started here, then SIGKILL what is left."""
        for process in reversed(list(self.processes.values())):
            # the whole group: a leader that exited may have left children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
