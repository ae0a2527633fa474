"""benchmarks/serve_load.py: its wrk parser, its error messages, and a seconds-long run against
the tiny exported model (speed figures not asserted; wrk is Debian's, .ci/run installs it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import load_benchmark

serve_load = load_benchmark("serve_load")

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/predict
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.40ms    1.23ms   1.20s    80.00%
    Req/Sec     1.08k   100.00     1.20k    70.00%
  Latency Distribution
     50%  812.00us
     75%    7.80ms
     90%    8.50ms
     99%    1.02s
  10800 requests in 10.00s, 2.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   1080.00
Transfer/sec:    200.00KB
"""


def test_parse_wrk_latency_output() -> None:
    out = serve_load.parse_wrk(WRK_OUTPUT)
    assert out["requests_per_s"] == 1080.0 and out["requests"] == 10800
    assert out["p50_ms"] == pytest.approx(0.812) and out["p99_ms"] == pytest.approx(1020.0)
    assert out["socket_errors"] == {"connect": 0, "read": 1, "write": 0, "timeout": 2}
    assert out["non_2xx_3xx"] == 5 and out["errors"] == 8
    clean = WRK_OUTPUT.replace("  Socket errors: connect 0, read 1, write 0, timeout 2\n", "")
    assert serve_load.parse_wrk(clean.replace("  Non-2xx or 3xx responses: 5\n", ""))["errors"] == 0
    with pytest.raises(ValueError, match="--latency"):
        serve_load.parse_wrk(WRK_OUTPUT.replace("     50%  812.00us\n", ""))


def test_clear_errors(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(serve_load.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="install it: apt-get install wrk"):
        serve_load.main([str(tiny_run)])
    monkeypatch.setattr(serve_load.shutil, "which", lambda name: "/usr/bin/wrk")
    with pytest.raises(SystemExit, match=r"model\.int8\.onnx is missing.*--quantize int8"):
        serve_load.main([str(tiny_run)])


@pytest.mark.linux_only  # Debian's wrk
def test_serve_load_smoke(tiny_exported: Path, tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk not found: install Debian's wrk package (apt-get install wrk)")
    out = tmp_path / "serve_load.json"
    argv = [str(tiny_exported), "--connections", "1,4", "--duration", "1", "--repeat", "2"]
    result = serve_load.main([*argv, "--warmup", "1", "--model-seconds", "0.3", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    server = result["server"]
    assert server["exit_code"] == 0 and server["ready"]["backend"] == "onnx-int8"
    assert [r["connections"] for r in server["runs"]] == [1, 4, 4, 1]  # rotated per repetition
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in server["runs"])
    log = server["request_log"]
    assert log["wrk_requests"] <= log["rows"] <= log["wrk_requests"] + log["max_uncounted"]
    rows = {r["connections"]: r for r in result["table"]}
    assert set(rows) == {1, 4} and all(r["share_of_model_batch1"] > 0 for r in rows.values())
    batches = {(m["batch"], m["streams"]) for m in result["model"]["results"]}
    streams = result["config"]["inference_threads"]
    assert {(1, streams), (result["config"]["micro_batch_size"], streams)} <= batches
    assert result["machine"]["cpu_flags"] is not None and result["commit"]
