"""``sentiment push-to-hub | serve | drift``: shipping and running a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentiment_hf.cli.app import RunDirArg, app
from sentiment_hf.monitoring.config import DriftConfig
from sentiment_hf.monitoring.report import DriftReport, DriftThresholds
from sentiment_hf.serve.config import ServeConfig


@app.command("push-to-hub")
def push_to_hub_(
    model_dir: RunDirArg,
    repo_id: Annotated[str, typer.Option(help="Target model repository, ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    revision: Annotated[
        str | None, typer.Option(help="Branch to upload to (created when missing).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Stage and list the files; no network.")
    ] = False,
    stage_dir: Annotated[
        Path | None, typer.Option(help="Stage into this new or empty folder (default: temp dir).")
    ] = None,
    license: Annotated[
        str, typer.Option(help="License for the model card metadata.")
    ] = "apache-2.0",
) -> None:
    """Stage MODEL_DIR (safetensors, tokenizer, config, recipe, model card) and upload it.

    The token comes from HF_TOKEN or a saved `hf auth login` and is never printed.
    """
    from sentiment_hf.hub.push import push_to_hub

    result = push_to_hub(
        model_dir,
        repo_id,
        private=private,
        revision=revision,
        dry_run=dry_run,
        stage_dir=stage_dir,
        license=license,
    )
    typer.echo(f"staged {result.staged.path}:")
    for name, size in result.staged.sizes.items():
        typer.echo(f"  {name}\t{size}")
    if result.uploaded:
        typer.echo(f"uploaded to {result.url}")
    else:
        typer.echo(f"dry run: nothing uploaded to {repo_id}")


#: The options of ``sentiment serve``, declared once here so the command reads as its steps.
ServeBackend = Annotated[
    str, typer.Option(help="torch, onnx or onnx-int8 (onnx needs `sentiment export`).")
]
Host = Annotated[str, typer.Option(help="Interface to bind.")]
Port = Annotated[int, typer.Option(help="TCP port.")]
Workers = Annotated[int, typer.Option(min=1, help="Server processes (each loads the model).")]
Runner = Annotated[
    str, typer.Option(help="threadpool (a model call per request) or batch (micro-batching).")
]
InferenceThreads = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Model calls run at once; 0 = one per physical core.",
        show_default="one per physical core",
    ),
]
IntraOpThreads = Annotated[
    int | None,
    typer.Option(min=0, help="Threads inside one model call; 0 = the backend's default."),
]
MicroBatchSize = Annotated[
    int, typer.Option(min=1, help="Most texts the batch runner joins into one model call.")
]
RequestLogPath = Annotated[
    Path | None, typer.Option(help="SQLite file that receives every prediction.")
]
NoRequestLog = Annotated[bool, typer.Option("--no-request-log", help="Log nothing.")]
RetentionDays = Annotated[
    float | None, typer.Option(help="Delete logged rows older than this many days.")
]
LogMirror = Annotated[
    str | None,
    typer.Option(help="Also copy logged rows to this fsspec URL, e.g. gs://bucket/requests."),
]
LogFlushInterval = Annotated[
    float,
    typer.Option(
        min=0.001,
        help="Seconds between request-log writes: at most the rows answered in the last "
        "interval are lost if the server is killed.",
    ),
]
LogMirrorInterval = Annotated[
    float, typer.Option(min=0.001, help="Seconds between uploads to --log-mirror.")
]
MirrorOption = Annotated[
    list[str] | None,
    typer.Option(
        help="fsspec option KEY=VALUE for --log-mirror (repeatable), e.g. endpoint_url=...."
    ),
]
MaxTextChars = Annotated[int, typer.Option(min=1, help="Longest text accepted (422 beyond).")]
MaxTextsPerRequest = Annotated[
    int, typer.Option(min=1, help="Most texts in one request (422 beyond).")
]
MaxBodyBytes = Annotated[int, typer.Option(min=1, help="Largest body accepted (413 beyond).")]
DriftReportPath = Annotated[
    Path | None,
    typer.Option(help="drift.json whose flag /metrics exposes as sentiment_drift_detected."),
]
AccessLog = Annotated[bool, typer.Option("--access-log", help="Log every HTTP request.")]


@app.command()
def serve(
    model_dir: RunDirArg,
    backend: ServeBackend = ServeConfig.backend,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    runner: Runner = ServeConfig.runner,
    inference_threads: InferenceThreads = ServeConfig.inference_threads,
    intra_op_threads: IntraOpThreads = ServeConfig.intra_op_threads,
    micro_batch_size: MicroBatchSize = ServeConfig.micro_batch_size,
    request_log: RequestLogPath = ServeConfig.request_log,
    no_request_log: NoRequestLog = False,
    retention_days: RetentionDays = ServeConfig.log_retention_days,
    log_mirror: LogMirror = ServeConfig.log_mirror,
    log_flush_interval: LogFlushInterval = ServeConfig.log_flush_interval_s,
    log_mirror_interval: LogMirrorInterval = ServeConfig.log_mirror_interval_s,
    mirror_option: MirrorOption = None,
    max_text_chars: MaxTextChars = ServeConfig.max_text_chars,
    max_texts_per_request: MaxTextsPerRequest = ServeConfig.max_texts_per_request,
    max_body_bytes: MaxBodyBytes = ServeConfig.max_body_bytes,
    drift_report: DriftReportPath = ServeConfig.drift_report,
    access_log: AccessLog = False,
) -> None:
    """Serve MODEL_DIR over HTTP: POST /predict, GET /health /ready /metrics, the page at /."""
    from sentiment_hf.serve.config import parse_options
    from sentiment_hf.serve.server import serve as run_server

    config = ServeConfig(
        model_dir=model_dir,
        backend=backend,
        runner=runner,
        inference_threads=inference_threads or None,
        intra_op_threads=intra_op_threads or None,
        micro_batch_size=micro_batch_size,
        request_log=None if no_request_log else request_log,
        log_retention_days=retention_days,
        log_flush_interval_s=log_flush_interval,
        log_mirror=log_mirror,
        log_mirror_interval_s=log_mirror_interval,
        log_mirror_options=parse_options(mirror_option or []),
        max_text_chars=max_text_chars,
        max_texts_per_request=max_texts_per_request,
        max_body_bytes=max_body_bytes,
        drift_report=drift_report,
    )
    run_server(config, host=host, port=port, workers=workers, access_log=access_log)


#: The options of ``sentiment drift``.
DriftRunDir = Annotated[
    Path, typer.Argument(help="The run directory whose model served the requests.")
]
Requests = Annotated[
    str,
    typer.Option(
        help="The SQLite request log of `sentiment serve`, or its --log-mirror URL/folder."
    ),
]
RequestsOption = Annotated[
    list[str] | None,
    typer.Option(help="fsspec option KEY=VALUE for a --requests URL (repeatable)."),
]
Since = Annotated[
    str | None, typer.Option(help="Only requests newer than this: 24h, 7d or an ISO date-time.")
]
DriftData = Annotated[
    str | None, typer.Option(help="Training data source instead of the recipe's.")
]
DriftOutput = Annotated[Path | None, typer.Option(help="Report folder (default MODEL_DIR/drift).")]
Alpha = Annotated[
    float, typer.Option(help="Significance level of every test: drift needs p below it.")
]
MinKs = Annotated[
    float,
    typer.Option(
        help="Smallest KS statistic (largest gap between the two cumulative distributions, "
        "0-1) that counts as drift in text_length and confidence."
    ),
]
OovDelta = Annotated[
    float,
    typer.Option(
        help="Smallest rise of the share of unseen words, as a fraction (0.05 = 5 "
        "percentage points)."
    ),
]
LabelShift = Annotated[
    float,
    typer.Option(
        help="Smallest change of a predicted label's share, as a fraction (0.1 = 10 "
        "percentage points)."
    ),
]
ReferenceSize = Annotated[int, typer.Option(min=2, help="Training texts sampled as reference.")]
MaxRequests = Annotated[int, typer.Option(min=2, help="Most recent requests compared.")]
MinRequests = Annotated[int, typer.Option(min=2, help="Refuse to test on fewer requests.")]
Permutations = Annotated[int, typer.Option(min=1, help="Permutations of the MMD test.")]


@app.command()
def drift(
    model_dir: DriftRunDir,
    requests: Requests,
    requests_option: RequestsOption = None,
    since: Since = DriftConfig.since,
    data: DriftData = DriftConfig.data,
    output: DriftOutput = DriftConfig.output_dir,
    alpha: Alpha = DriftThresholds.alpha,
    min_ks: MinKs = DriftThresholds.min_ks,
    oov_delta: OovDelta = DriftThresholds.oov_delta,
    label_shift: LabelShift = DriftThresholds.label_shift,
    reference_size: ReferenceSize = DriftConfig.reference_size,
    max_requests: MaxRequests = DriftConfig.max_requests,
    min_requests: MinRequests = DriftConfig.min_requests,
    permutations: Permutations = DriftConfig.permutations,
) -> None:
    """Compare logged requests with the training data; exit code 1 when drift is flagged.

    Prints two lines per check (what the reference and request values are, with their unit; the
    test statistic, its p-value and the rule) and writes drift.json, drift.html and drift.prom
    (docs: Drift report and alerts).
    """
    from sentiment_hf.monitoring.drift import detect_drift
    from sentiment_hf.serve.config import parse_options

    report = detect_drift(
        DriftConfig(
            model_dir=model_dir,
            requests=requests,
            since=since,
            data=data,
            output_dir=output,
            thresholds=DriftThresholds(
                alpha=alpha, min_ks=min_ks, oov_delta=oov_delta, label_shift=label_shift
            ),
            reference_size=reference_size,
            max_requests=max_requests,
            min_requests=min_requests,
            permutations=permutations,
            storage_options=parse_options(requests_option or []),
        )
    )
    _print_drift(report)


def _print_drift(report: DriftReport) -> None:
    """The checks on stdout, where the report went on stderr; exit code 1 when drift is
    flagged."""
    typer.echo(report.summary())
    typer.echo(f"report: {report.paths['html']} and {report.paths['json']}", err=True)
    if report.drift_detected:
        raise typer.Exit(1)
