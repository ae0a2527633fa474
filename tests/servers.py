"""Real servers for tests: a `sentiment serve` subprocess and the loopback GCS emulator.

Ports: a server that can bind port 0 and report the port it got does so (`sentiment serve`).
One that needs its port on the command line is started through :func:`start_on_some_port`,
which tries another port when the server reports that its port was taken (another process may
bind a port between our check that it is free and the server's own bind). Every wait for a
server polls with a deadline and fails at once, with the server's output, if it exits.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from unittest import mock

import pytest

RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
STARTED = "Application startup complete."
#: What a server's output says when its port is taken (Python's OSError, PostgreSQL's log).
PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
PORT_ATTEMPTS = 5
POLL_S = 0.1

T = TypeVar("T")


class PortInUse(Exception):
    """A server could not bind the port it was given; its output is the message."""


def _tail(text: str, chars: int = 3000) -> str:
    return text[-chars:] if text.strip() else "(no output)"


def unused_port() -> int:
    """A loopback port nothing is bound to at this instant (a candidate: see the module doc)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_on_some_port(start: Callable[[int], T], what: str, attempts: int = PORT_ATTEMPTS) -> T:
    """``start(port)`` on fresh candidate ports until it does not raise :class:`PortInUse`.

    ``start`` launches the server on ``port`` and waits until it is up (see
    :func:`wait_until_up`), raising :class:`PortInUse` when the port was taken and failing the
    test on any other error. After ``attempts`` clashes the test fails with the last output.
    """
    last = ""
    for _ in range(attempts):
        port = unused_port()
        try:
            return start(port)
        except PortInUse as exc:
            last = f"port {port}:\n{exc}"
    pytest.fail(f"{what}: the port was taken {attempts} times in a row; last output, {last}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def wait_until_up(
    proc: subprocess.Popen,
    is_up: Callable[[], bool],
    output: Callable[[], str],
    what: str,
    timeout: float,
) -> None:
    """Polls ``is_up()`` every 0.1 s for up to ``timeout`` s; checks ``proc`` on each turn.

    Raises :class:`PortInUse` (the process stopped) when the output says the port was taken;
    fails the test at once, with the output, when the process exits, and at the deadline.
    ``is_up`` must recognise this process's own readiness (a log line it writes once bound),
    not merely an open port, which another process may hold.
    """
    deadline = time.monotonic() + timeout
    while not is_up():
        text = output()
        if PORT_IN_USE.search(text):
            _stop(proc)
            raise PortInUse(_tail(text))
        if proc.poll() is not None:
            pytest.fail(
                f"{what} exited with code {proc.returncode} before it was up:\n" + _tail(output())
            )
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{what} was not up after {timeout:.0f} s:\n" + _tail(output()))
        time.sleep(POLL_S)


class Server:
    """`sentiment serve MODEL_DIR --port 0 ARGS...`; the bound port is read from its log.

    Waits until ``workers`` processes have logged that their app started (model loaded), up to
    240 s, and fails at once with the server's output if it exits before that.
    """

    def __init__(
        self, model_dir: Path, *args: str, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "sentiment_hf.cli", "serve", str(model_dir), "--port", "0"]
        self.proc = subprocess.Popen(
            [*cmd, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.url = ""
        started = [0]

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                match = RUNNING.search(line)
                if match and not self.url:
                    self.url = match.group(1)
                if STARTED in line:
                    started[0] += 1

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()

        def output() -> str:
            if self.proc.poll() is not None:
                reader.join(timeout=5)  # the last lines of a process that exited
            return "".join(self.lines[-30:])

        wait_until_up(
            self.proc,
            lambda: bool(self.url) and started[0] >= workers,
            output,
            "sentiment serve",
            timeout=240,
        )

    def stop(self) -> int:
        """Graceful stop (SIGINT, what Ctrl+C sends); the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait(timeout=30)


EMULATOR_UP = "[SERVER] All services started"  # logged once its HTTP server is bound


@contextmanager
def gcs_emulator(bucket: str = "sentiment-logs", log: Path | None = None) -> Iterator[str]:
    """gcp-storage-emulator on loopback with an in-memory bucket; yields its endpoint URL.

    Its output goes to ``log`` (a temporary file when None). While the context is open
    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` is set in this process's environment (gcsfs
    hangs on the emulator without it, and subprocesses inherit it); the previous value is put
    back on exit.
    """
    with tempfile.TemporaryDirectory(prefix="gcs-emulator-") as tmp:
        log = log or Path(tmp) / "emulator.log"
        exe = Path(sys.executable).with_name("gcp-storage-emulator")

        def start(port: int) -> tuple[subprocess.Popen, int]:
            # on a taken port the emulator logs the bind error and hangs: wait_until_up sees it
            args = ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
            with open(log, "w") as handle:
                proc = subprocess.Popen(
                    [str(exe), *args, "--default-bucket", bucket],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            wait_until_up(
                proc,
                lambda: EMULATOR_UP in log.read_text(errors="replace"),
                lambda: log.read_text(errors="replace"),
                "gcp-storage-emulator",
                timeout=60,
            )
            return proc, port

        proc, port = start_on_some_port(start, "gcp-storage-emulator")
        try:
            with mock.patch.dict(os.environ, {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}):
                yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
