"""Vertex AI and Cloud Run specs, and the Secret Manager launcher, without Google Cloud.

The specs are validated offline (YAML after variable substitution, required fields, the image
targets and CLI arguments they name, no literal secret). ``cloud/secret_env.py`` runs for real;
the metadata server and Secret Manager, which exist only on Google Cloud, are loopback HTTP
stand-ins that speak their REST shapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLOUD = REPO / "cloud"
VALUES = {
    "PROJECT_ID": "demo-project",
    "REGION": "europe-west4",
    "BUCKET": "demo-bucket",
    "MODEL_BUCKET": "demo-models",
    "LOG_BUCKET": "demo-logs",
    "TAG": "v9.9.9",
}
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|_KEY$|CREDENTIAL)", re.I)
SECRET_SHAPES = [
    re.compile(r"hf_[A-Za-z0-9]{30,}"),  # Hugging Face token
    re.compile(r"\b[0-9a-f]{40}\b"),  # W&B API key
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"ya29\.[0-9A-Za-z_-]+"),  # Google OAuth access token
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\"private_key\"|private_key_id"),
]

sys.path.insert(0, str(CLOUD))
import secret_env  # noqa: E402

sys.path.pop(0)


def render(name: str) -> dict:
    """The spec with its ${VARIABLES} filled in; unknown variables are an error."""
    text = (CLOUD / name).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{(\w+)\}", body))
    assert used <= set(VALUES), f"{name} uses undocumented variables {used - set(VALUES)}"
    return yaml.safe_load(string.Template(text).substitute(VALUES))


def dockerfile_stages() -> set[str]:
    text = (REPO / "Dockerfile").read_text()
    return set(re.findall(r"^FROM \S+ AS (\S+)", text, flags=re.M))


def literal_secrets(spec: object) -> list[str]:
    """Names of secret-looking environment variables that are not a Secret Manager reference."""
    found = []
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack += node
        elif isinstance(node, dict):
            stack += node.values()
            is_env = "name" in node and ("value" in node or "valueFrom" in node)
            if is_env and SECRET_NAME.search(str(node["name"])):
                ref = (node.get("valueFrom") or {}).get("secretKeyRef") or {}
                if "value" in node or not (ref.get("name") and ref.get("key")):
                    found.append(str(node["name"]))
    return found


def test_literal_secret_detection_works() -> None:
    bad = {"env": [{"name": "HF_TOKEN", "value": "x"}, {"name": "WANDB_API_KEY", "valueFrom": {}}]}
    good = {"env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "1"}}},
                    {"name": "HF_HUB_OFFLINE", "value": "1"}]}  # fmt: skip
    assert sorted(literal_secrets(bad)) == ["HF_TOKEN", "WANDB_API_KEY"]
    assert literal_secrets(good) == []
    assert any(shape.search("hf_" + "a" * 34) for shape in SECRET_SHAPES)


@pytest.mark.parametrize("name", ["vertex-train.yaml", "cloudrun-serve.yaml", "k8s-sweep-job.yaml"])
def test_no_literal_secret(name: str) -> None:
    text = (CLOUD / name).read_text(encoding="utf-8")
    for shape in SECRET_SHAPES:
        assert not shape.search(text), f"{name} holds something secret-shaped: {shape.pattern}"
    assert literal_secrets(render(name)) == []


def test_vertex_custom_job_spec() -> None:
    spec = render("vertex-train.yaml")
    assert spec["serviceAccount"] == "sentiment-train@demo-project.iam.gserviceaccount.com"
    assert spec["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://demo-bucket/")
    (pool,) = spec["workerPoolSpecs"]
    assert pool["replicaCount"] == 1
    machine = pool["machineSpec"]
    assert machine["acceleratorType"].startswith("NVIDIA_") and machine["acceleratorCount"] >= 1
    container = pool["containerSpec"]
    image, tag = container["imageUri"].rsplit(":", 1)
    assert image == "europe-west4-docker.pkg.dev/demo-project/sentiment-hf/sentiment-hf"
    target = tag.split("-")[0]
    assert tag == f"{target}-v9.9.9" and target == "train" and target in dockerfile_stages()
    command = container["command"]
    assert command[:2] == ["python", "/app/cloud/secret_env.py"]
    assert (
        "COPY --chown=app:app cloud/secret_env.py ./cloud/secret_env.py"
        in (REPO / "Dockerfile").read_text()
    )
    bindings, child = secret_env.parse_bindings(command[2:])
    assert set(bindings) == {"WANDB_API_KEY", "HF_TOKEN"}
    for resource in bindings.values():
        assert resource.startswith("projects/demo-project/secrets/")
    assert child[:2] == ["sentiment", "train"]
    from sentiment_hf.config.recipe import load_recipe

    recipe = load_recipe(REPO / child[2], container["args"])  # the args are valid overrides
    assert str(recipe.output_dir).startswith("/gcs/demo-bucket/")
    assert recipe.tracking.wandb is True
    for env in container.get("env", []):
        assert not SECRET_NAME.search(env["name"]), f"{env['name']} must come from Secret Manager"


def test_cloud_run_service_spec(tiny_run: Path) -> None:
    spec = render("cloudrun-serve.yaml")
    assert spec["apiVersion"] == "serving.knative.dev/v1" and spec["kind"] == "Service"
    template = spec["spec"]["template"]["spec"]
    assert template["serviceAccountName"] == "sentiment-serve@demo-project.iam.gserviceaccount.com"
    (container,) = template["containers"]
    image, tag = container["image"].rsplit(":", 1)
    assert image.endswith("/demo-project/sentiment-hf/sentiment-hf")
    assert tag == "serve-v9.9.9" and "serve" in dockerfile_stages()
    args = container["args"]
    assert args[0] == "serve"
    port = container["ports"][0]["containerPort"]
    assert int(args[args.index("--port") + 1]) == port
    assert args[args.index("--host") + 1] == "0.0.0.0"

    import typer.main

    from sentiment_hf.cli import app

    serve = typer.main.get_command(app).commands["serve"]
    known = {opt for param in serve.params for opt in param.opts}
    for word in args[1:]:
        if word.startswith("--"):
            assert word in known, f"`sentiment serve` has no option {word}"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    model_dir = args[1]
    assert any(model_dir.startswith(path + "/") for path in mounts.values())
    (volume,) = template["volumes"]
    assert volume["csi"]["driver"] == "gcsfuse.run.googleapis.com"
    assert volume["csi"]["volumeAttributes"]["bucketName"] == "demo-models"

    from sentiment_hf.serve.app import create_app

    routes = {route.path for route in create_app(tiny_run, request_log=None).routes}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
        assert container[probe]["httpGet"]["port"] == port


def test_kubernetes_sweep_job_spec() -> None:
    """M workers on one study: a work-queue Job, valid against the Kubernetes schema (strict: no
    unknown field), the storage URL only from a Secret, the arguments valid sweep overrides."""
    import kubernetes_validate

    spec = render("k8s-sweep-job.yaml")
    kubernetes_validate.validate(spec, kubernetes_validate.latest_version(), strict=True)
    bad = {**spec, "spec": {**spec["spec"], "paralelism": 4}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)
    job = spec["spec"]
    assert spec["kind"] == "Job" and job["parallelism"] >= 2 and "completions" not in job
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    (container,) = pod["containers"]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "europe-west4-docker.pkg.dev/demo-project/sentiment-hf/sentiment-hf"
    assert tag == "train-v9.9.9" and "train" in dockerfile_stages()
    args = container["args"]
    assert args[0] == "sweep"
    from sentiment_hf.config.recipe import load_recipe
    from sentiment_hf.sweep.storage import ENV_PREFIX

    recipe = load_recipe(REPO / args[1], args[2:])  # the image's ENTRYPOINT is `sentiment`
    assert recipe.sweep is not None and recipe.sweep.storage.startswith(ENV_PREFIX)
    env = {e["name"]: e for e in container["env"]}
    bound = env[recipe.sweep.storage.removeprefix(ENV_PREFIX)]
    assert "value" not in bound
    assert set(bound["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(str(recipe.output_dir).startswith(path + "/") for path in mounts)


# --- cloud/secret_env.py against loopback stand-ins ------------------------------------------

TOKEN = "stand-in-access-token-123"
SECRETS = {
    "projects/demo/secrets/wandb-api-key/versions/latest": "wandb-value-0123456789",
    "projects/demo/secrets/hf-token/versions/3": "hf-value-abcdefghij",
}


class StandIn(BaseHTTPRequestHandler):
    """The metadata server's token endpoint and Secret Manager's versions.access, on loopback."""

    def do_GET(self) -> None:
        if self.path == secret_env.TOKEN_PATH:
            if self.headers.get("Metadata-Flavor") != "Google":
                return self._send(403, {"error": "missing Metadata-Flavor"})
            return self._send(200, {"access_token": TOKEN, "expires_in": 3599})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"error": "unauthenticated"})
        match = re.fullmatch(r"/v1/(.+):access", self.path)
        if match and match[1] in SECRETS:
            data = base64.b64encode(SECRETS[match[1]].encode()).decode()
            return self._send(200, {"name": match[1], "payload": {"data": data}})
        return self._send(403, {"error": "permission denied"})

    def _send(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def launch(stand_in: str | None, *argv: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "GCE_METADATA_HOST": stand_in or "127.0.0.1:9"}
    env["SECRET_MANAGER_ENDPOINT"] = f"http://{stand_in or '127.0.0.1:9'}"
    return subprocess.run(
        [sys.executable, str(CLOUD / "secret_env.py"), *argv],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


CHILD = [
    sys.executable,
    "-c",
    "import hashlib, os; print(*(hashlib.sha256(os.environ[k].encode()).hexdigest() "
    "for k in ('WANDB_API_KEY', 'HF_TOKEN')))",
]


@pytest.mark.linux_only  # the child's PATH is /usr/bin:/bin
def test_secrets_reach_the_child_and_are_never_printed(stand_in: str) -> None:
    result = launch(
        stand_in,
        "WANDB_API_KEY=projects/demo/secrets/wandb-api-key/versions/latest",
        "HF_TOKEN=projects/demo/secrets/hf-token/versions/3",
        "--",
        *CHILD,
    )
    assert result.returncode == 0, result.stderr
    expected = [hashlib.sha256(v.encode()).hexdigest() for v in SECRETS.values()]
    assert result.stdout.split() == expected
    for value in [*SECRETS.values(), TOKEN]:
        assert value not in result.stdout + result.stderr


@pytest.mark.linux_only  # the child's PATH is /usr/bin:/bin
def test_denied_secret_is_a_one_line_error(stand_in: str) -> None:
    result = launch(
        stand_in, "HF_TOKEN=projects/demo/secrets/not-granted/versions/latest", "--", *CHILD
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "HF_TOKEN" in line and "HTTP 403" in line and "secretAccessor" in line
    assert TOKEN not in line and result.stdout == ""


@pytest.mark.linux_only  # the child's PATH is /usr/bin:/bin
def test_bad_usage_and_no_metadata_server() -> None:
    for argv, message in (
        (["HF_TOKEN=projects/p/secrets/s/versions/1", "true"], "usage"),
        (["HF_TOKEN=hf_literal_value", "--", "true"], "is not a secret version name"),
        (["lower=projects/p/secrets/s/versions/1", "--", "true"], "must look like NAME="),
        (["HF_TOKEN", "--", "true"], "must look like NAME="),
        (["HF_TOKEN=projects/p/secrets/s/versions/1", "--"], "no command"),
        (["HF_TOKEN=projects/p/secrets/s/versions/1", "--", "true"], "cannot connect"),
    ):
        result = launch(None, *argv)
        assert result.returncode == 2, argv
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, argv
    pasted = launch(None, "HF_TOKEN=hf_pasted_by_mistake", "--", "true")
    assert "hf_pasted_by_mistake" not in pasted.stderr + pasted.stdout
