"""``sentiment predict --engine ray``: batch prediction on Ray Data, on a real local Ray cluster.

A real ``ray start --head`` on this machine's 2 CPUs (offline, no dashboard), real actors
running onnxruntime on the tiny fixture run, a real SIGKILL of a real actor process, a real
loopback GCS emulator for gs:// URLs. Every answer is compared with the one-machine path
(:func:`~sentiment_hf.inference.batch.predict_file`) on the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_inputs import BLANK_AT, N_TEXTS, read_jsonl, write_inputs
from cli_inprocess import run_main
from servers import POLL_S, gcs_emulator, start_on_some_port, wait_until_up

from sentiment_hf.inference.batch import predict_file
from sentiment_hf.inference.ray_engine import PAUSE_DIR_ENV

pytestmark = pytest.mark.linux_only  # a Ray cluster, POSIX signals

#: The rows of the kill test: enough chunks that both actors are busy when one dies.
KILL_ROWS = 640
CHUNK = 8
#: The test cluster's environment, and its drivers': loopback only, so no token (the token
#: file lives in ~/.ray, shared with whatever else runs Ray on this machine).
CLUSTER_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_worker_niceness": "0",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs hangs on the emulator without it
}


@pytest.fixture(scope="module")
def run(tiny_exported: Path) -> Path:
    """The tiny run with a stamped model.int8.onnx (onnx-int8 is the default); read-only."""
    return tiny_exported


@pytest.fixture(scope="module")
def texts(rt_dir: Path) -> list[str]:
    lines = (rt_dir / "rt-polarity.pos").read_bytes().decode("latin-1").split("\n")
    picked = [line.strip() for line in lines[:N_TEXTS]]
    picked[3] = 'a "quoted", comma-holding\nmulti-line review'
    return picked


@pytest.fixture(scope="module")
def inputs(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_inputs(texts, tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ray start --head --block`` on loopback with 2 CPUs; yields its address."""
    temp = tmp_path_factory.mktemp("ray")
    log = temp / "head.log"
    # Ray's sockets live under --temp-dir, and a socket path may hold at most 107 bytes
    sessions = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    exe = Path(sys.executable).with_name("ray")

    def start(port: int) -> tuple[subprocess.Popen, int]:
        args = [str(exe), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2"]
        args += ["--node-ip-address", "127.0.0.1", "--include-dashboard", "false"]
        args += ["--disable-usage-stats", "--temp-dir", str(sessions)]
        with open(log, "w") as handle:
            proc = subprocess.Popen(
                args,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **CLUSTER_ENV},
                start_new_session=True,
            )

        def text() -> str:
            return log.read_text(errors="replace")

        wait_until_up(proc, lambda: "Ray runtime started" in text(), text, "ray start", 120)
        return proc, port

    proc, port = start_on_some_port(start, "ray start --head")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # --block stops the processes it started, slowly
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # the group may all be gone already
            os.killpg(proc.pid, signal.SIGKILL)  # the whole test cluster: its own session
        proc.wait(timeout=30)
        shutil.rmtree(sessions, ignore_errors=True)


@pytest.fixture(scope="module")
def reference(run: Path, inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The one-machine path's output of the .jsonl input, chunks of 8 (onnx-int8)."""
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    predict_file(run, inputs[".jsonl"], out, text_column="review", chunk_size=CHUNK)
    return out


def _sentiment(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sentiment_hf.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **CLUSTER_ENV, **(env or {})},
    )


def _ray_args(run: Path, src: str, out: str, *extra: str) -> list[str]:
    args = ["predict", str(run), "--file", src, "--output", out, "--engine", "ray"]
    return [*args, "--text-column", "review", "--chunk-size", str(CHUNK), *extra]


def test_a_local_ray_cluster_writes_the_one_machine_file(
    run: Path, inputs: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    """No --address: the job starts its own cluster on this machine and stops it after."""
    out = tmp_path / "ray.jsonl"
    done = _sentiment(*_ray_args(run, str(inputs[".csv"]), str(out), "--actors", "2"))
    assert done.returncode == 0, done.stderr
    assert "Ray: 2 actor(s)" in done.stderr and "backend: onnx-int8" in done.stderr
    assert "44 texts scored in 6 chunk(s)" in done.stderr and "1 blank row(s)" in done.stderr
    assert out.read_bytes() == reference.read_bytes()  # same rows, labels, probabilities
    assert [r["index"] for r in read_jsonl(out)] == [i for i in range(N_TEXTS) if i != BLANK_AT]


@pytest.mark.parametrize(("source", "target"), [(".parquet", ".csv"), (".txt", ".parquet")])
def test_every_format_on_a_cluster_gives_the_one_machine_rows(
    source: str,
    target: str,
    cluster: str,
    run: Path,
    inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    column = [] if source == ".txt" else ["--text-column", "review"]
    local, ray = tmp_path / f"local{target}", tmp_path / f"ray{target}"
    text_column = None if source == ".txt" else "review"
    predict_file(run, inputs[source], local, text_column=text_column, chunk_size=CHUNK)
    args = ["predict", str(run), "--file", str(inputs[source]), "--output", str(ray)]
    args += ["--engine", "ray", "--chunk-size", str(CHUNK), "--address", cluster, *column]
    done = _sentiment(*args)
    assert done.returncode == 0, done.stderr
    if target == ".parquet":
        assert pq.read_table(ray).to_pylist() == pq.read_table(local).to_pylist()
        assert len(pq.read_table(ray)) == N_TEXTS - 1
    else:
        assert ray.read_bytes() == local.read_bytes()


def test_an_actor_killed_mid_job_and_every_row_answered_once(
    cluster: str, run: Path, texts: list[str], tmp_path: Path
) -> None:
    """SIGKILL of an actor holding an unanswered chunk: Ray restarts it and retries the chunk."""
    rows = [f"{texts[i % N_TEXTS].replace(chr(10), ' ')} #{i}" for i in range(KILL_ROWS)]
    src = tmp_path / "many.txt"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    local, out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    predict_file(run, src, local, chunk_size=CHUNK)
    hook = tmp_path / "hook"
    hook.mkdir()
    args = ["predict", str(run), "--file", str(src), "--output", str(out), "--engine", "ray"]
    args += ["--chunk-size", str(CHUNK), "--address", cluster, "--actors", "2"]
    job = subprocess.Popen(
        [sys.executable, "-m", "sentiment_hf.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CLUSTER_ENV, PAUSE_DIR_ENV: str(hook)},
    )
    try:
        paused = hook / "paused"
        deadline = time.monotonic() + 300
        while not (paused.is_file() and paused.read_text()):  # an actor holds a chunk
            assert job.poll() is None, job.communicate()[1]
            assert time.monotonic() < deadline, "no actor reached the pause"
            time.sleep(POLL_S)  # a poll under a deadline, not a wait for time to pass
        victim = int(paused.read_text())
        assert "MapWorker" in Path(f"/proc/{victim}/cmdline").read_text(errors="replace")
        os.kill(victim, signal.SIGKILL)
        _, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == 0, stderr
    assert not Path(f"/proc/{victim}").exists()
    got = read_jsonl(out)
    assert [r["index"] for r in got] == list(range(KILL_ROWS))  # each row once, in order
    assert out.read_bytes() == local.read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.jsonl", '{"review": "fine"}\n{not json}\n', "line 2 is not valid JSON"),
        ("wrong.jsonl", '{"review": "fine"}\n{"review": 42}\n', "holds int"),
    ],
)
def test_a_bad_row_gives_the_one_machine_error(
    name: str,
    content: str,
    needle: str,
    cluster: str,
    run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    args = ["predict", str(run), "--file", str(src), "--output", str(tmp_path / "l.jsonl")]
    local = run_main([*args, "--text-column", "review"], capsys, monkeypatch)
    assert local.code == 2 and needle in local.error_lines[0], local.stderr
    done = _sentiment(*_ray_args(run, str(src), str(tmp_path / "r.jsonl"), "--address", cluster))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr
    assert errors == local.error_lines, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_gs_urls_in_and_out_through_the_emulator(
    cluster: str, run: Path, inputs: dict[str, Path], reference: Path
) -> None:
    with gcs_emulator("batch") as endpoint:
        import gcsfs  # reads GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT, which the emulator sets

        options = {"endpoint_url": endpoint, "token": "anon"}
        fs = gcsfs.GCSFileSystem(**options)
        fs.put_file(str(inputs[".jsonl"]), "batch/in/reviews.jsonl")
        storage = [f"--storage-option={k}={v}" for k, v in options.items()]
        args = _ray_args(run, "gs://batch/in/reviews.jsonl", "gs://batch/out/scored.jsonl")
        done = _sentiment(*args, "--address", cluster, *storage)
        assert done.returncode == 0, done.stderr
        assert fs.cat_file("batch/out/scored.jsonl") == reference.read_bytes()
        again = _sentiment(*args, "--address", cluster, *storage)
        assert again.returncode == 2 and "already exists" in again.stderr


def test_predict_dataset_adds_the_answer_to_a_ray_dataset(
    cluster: str, run: Path, texts: list[str], tmp_path: Path
) -> None:
    """The library form on a user's own Dataset: columns pass through, blank rows get nulls,
    answers are the Predictor's (fp32 ONNX: they do not depend on the batch)."""
    script = tmp_path / "job.py"
    script.write_text(
        "import json, sys, ray, ray.data\n"
        "from sentiment_hf.inference.ray_engine import predict_dataset\n"
        "ray.init(address=sys.argv[1], log_to_driver=False)\n"
        "ray.data.DataContext.get_current().execution_options.preserve_order = True\n"
        "rows = json.loads(open(sys.argv[2]).read())\n"
        "data = ray.data.from_items(rows)\n"
        "out = predict_dataset(sys.argv[3], data, text_column='review', backend='onnx',\n"
        "                      actors=2, rows_per_call=7)\n"
        "print(json.dumps(out.take_all()))\n",
        encoding="utf-8",
    )
    rows = [{"id": i, "review": "   " if i == BLANK_AT else t} for i, t in enumerate(texts)]
    (tmp_path / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), cluster, str(tmp_path / "rows.json"), str(run)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **CLUSTER_ENV},
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert [r["id"] for r in got] == list(range(N_TEXTS))
    assert got[BLANK_AT]["label"] is None and got[BLANK_AT]["prob_pos"] is None
    from sentiment_hf import Predictor

    kept = [r for r in got if r["id"] != BLANK_AT]
    direct = Predictor(run, backend="onnx").predict([r["review"] for r in kept])
    assert len({round(p.score, 6) for p in direct}) > 10  # the fixture's answers differ
    for row, pred in zip(kept, direct, strict=True):
        assert (row["label"], row["abstained"]) == (pred.label, pred.abstained)
        assert row["prob_pos"] == pytest.approx(pred.probabilities["pos"], abs=1e-6)
        assert row["score"] == pytest.approx(pred.score, abs=1e-6)


def test_usage_errors_of_the_ray_engine_are_one_line(
    run: Path, inputs: dict[str, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    base = ["predict", str(run), "--file", str(inputs[".csv"]), "--text-column", "review"]
    ray_out = ["--output", str(tmp_path / "o.jsonl"), "--engine", "ray"]
    cases = [
        ([*base, "--output", str(tmp_path / "o.jsonl"), "--engine", "spark"], "--engine 'spark'"),
        ([*base, "--engine", "ray"], "--engine ray scores a file"),
        (
            [*base, "--output", "gs://b/o.jsonl"],
            "score fsspec URLs (gs://...) with --engine ray",
        ),
        (
            [*base, "--output", str(tmp_path / "o.jsonl"), "--actors", "2"],
            "--actors go with --engine ray",
        ),
        (
            [*base, *ray_out, "--storage-option", "x"],
            "--storage-option 'x' is not KEY=VALUE",
        ),
    ]
    for args, needle in cases:
        shown = run_main(args, capsys, monkeypatch)
        assert shown.code == 2 and len(shown.error_lines) == 1, shown.stderr
        assert needle in shown.error_lines[0], shown.stderr
    assert not list(tmp_path.iterdir())
