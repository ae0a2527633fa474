"""Real servers for tests: a `sentiment serve` subprocess and the loopback GCS emulator."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
STARTED = "Application startup complete."


class Server:
    """`sentiment serve MODEL_DIR --port 0 ARGS...`; the bound port is read from its log.

    Waits until ``workers`` processes have logged that their app started (model loaded).
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
        started = threading.Semaphore(0)
        bound = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                match = RUNNING.search(line)
                if match and not bound.is_set():
                    self.url = match.group(1)
                    bound.set()
                if STARTED in line:
                    started.release()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 240
        ok = bound.wait(timeout=240)
        for _ in range(workers):
            ok = ok and started.acquire(timeout=max(deadline - time.monotonic(), 0.1))
        if not ok:
            self.proc.kill()
            pytest.fail("server did not start:\n" + "".join(self.lines[-30:]))

    def stop(self) -> int:
        """Graceful stop (SIGINT, what Ctrl+C sends); the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gcs_emulator(bucket: str = "sentiment-logs") -> Iterator[str]:
    """gcp-storage-emulator on loopback with an in-memory bucket; yields its endpoint URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    args = ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    proc = subprocess.Popen(
        [str(exe), *args, "--default-bucket", bucket, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("gcp-storage-emulator did not start")
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # gcsfs hangs on the emulator without
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
