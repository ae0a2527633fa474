"""`sentiment serve` binds its port before it loads the model: a port in use (or an address
this machine does not have) is one `error:` line and exit 2 at once, not uvicorn's
`[Errno 98]` and exit 3 after the model loaded. Port 0 (any free port) still serves."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import servers
from cli_inprocess import run_main


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another socket is listening on for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def unloadable_run(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run whose weights file is cut short: the run directory passes its
    check, but loading the model fails. A port error from it proves the port came first."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    return run


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_error_line_before_the_model_loads(
    workers: str,
    busy_port: int,
    unloadable_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["serve", str(unloadable_run), "--port", str(busy_port), "--workers", workers]
    result = run_main(args, capsys, monkeypatch)
    assert result.code == 2, (result.code, result.stderr[-2000:])
    assert result.error_lines == [
        f"error: port {busy_port} on 127.0.0.1 is already in use; pick another with --port"
    ], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr
    assert not (tmp_path / "requests.db").exists()  # nothing started


def test_an_address_this_machine_lacks_is_one_error_line(
    unloadable_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never a local address
    result = run_main(["serve", str(unloadable_run), "--host", host], capsys, monkeypatch)
    assert result.code == 2, (result.code, result.stderr[-2000:])
    assert len(result.error_lines) == 1, result.stderr[-2000:]
    line = result.error_lines[0]
    assert f"cannot bind {host}:8000: it is not an address of this machine" in line, line
    assert "--host 127.0.0.1" in line and "0.0.0.0" in line, line


def test_port_zero_still_serves_on_the_port_it_reports(tiny_run: Path, tmp_path: Path) -> None:
    server = servers.Server(tiny_run, "--request-log", str(tmp_path / "requests.db"))
    try:
        port = int(server.url.rsplit(":", 1)[1])
        assert port > 0
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
        answer = httpx.post(f"{server.url}/predict", json={"text": "a fine film"}, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0
