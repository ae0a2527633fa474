"""Run a command with environment variables read from Google Secret Manager.

    python cloud/secret_env.py \\
        WANDB_API_KEY=projects/PROJECT/secrets/wandb-api-key/versions/latest \\
        HF_TOKEN=projects/PROJECT/secrets/hf-token/versions/latest \\
        -- sentiment train recipes/distilbert.yaml

Cloud Run binds secrets to environment variables itself (``valueFrom.secretKeyRef``); a Vertex AI
custom job cannot, so its container starts through this launcher: the job's service account gets
an access token from the metadata server, each secret version is read over the Secret Manager REST
API, and the values go straight into the child's environment. Nothing here prints a value or a
token. Standard library only, so it runs in the slim image without extra packages.

``GCE_METADATA_HOST`` (the variable google-auth honours) and ``SECRET_MANAGER_ENDPOINT`` point the
two endpoints elsewhere, e.g. at loopback stand-ins in the tests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import urllib.error
import urllib.request

RESOURCE = re.compile(r"projects/[^/\s]+/secrets/[A-Za-z0-9_-]+/versions/[A-Za-z0-9_-]+")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


class SecretError(Exception):
    """A one-line, value-free explanation of why a secret could not be read."""


def parse_bindings(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``NAME=projects/.../versions/V ... -- command ...`` into bindings and the command."""
    if "--" not in argv:
        raise SecretError(
            "usage: secret_env.py NAME=projects/P/secrets/S/versions/V ... -- COMMAND ..."
        )
    cut = argv.index("--")
    bindings, command = argv[:cut], argv[cut + 1 :]
    if not command:
        raise SecretError("no command after '--'; give the program to run with the secrets")
    out: dict[str, str] = {}
    for item in bindings:
        name, sep, resource = item.partition("=")
        if not sep or not ENV_NAME.fullmatch(name):
            raise SecretError("each binding must look like NAME=projects/P/secrets/S/versions/V")
        if not RESOURCE.fullmatch(resource):  # never echo it: it may be a pasted secret
            raise SecretError(
                f"{name}: the value is not a secret version name; "
                "write projects/PROJECT/secrets/SECRET/versions/latest"
            )
        out[name] = resource
    return out, command


def _get_json(url: str, headers: dict[str, str], what: str) -> dict:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise SecretError(f"{what}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SecretError(f"{what}: cannot connect ({reason})") from None
    except ValueError:
        raise SecretError(f"{what}: the answer is not JSON") from None


def access_token() -> str:
    """The default service account's OAuth token, from the metadata server."""
    host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    body = _get_json(
        f"http://{host}{TOKEN_PATH}",
        {"Metadata-Flavor": "Google"},
        "metadata server token (is a service account attached to the job?)",
    )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise SecretError("metadata server token: the answer has no access_token")
    return token


def read_secret(resource: str, token: str, name: str) -> str:
    """The payload of one secret version, decoded as UTF-8."""
    endpoint = os.environ.get("SECRET_MANAGER_ENDPOINT", "https://secretmanager.googleapis.com")
    body = _get_json(
        f"{endpoint.rstrip('/')}/v1/{resource}:access",
        {"Authorization": f"Bearer {token}"},
        f"{name} ({resource}); grant the job's service account roles/secretmanager.secretAccessor",
    )
    try:
        return base64.b64decode(body["payload"]["data"]).decode("utf-8")
    except (KeyError, TypeError, ValueError):
        raise SecretError(f"{name} ({resource}): the answer has no readable payload") from None


def resolve(bindings: dict[str, str]) -> dict[str, str]:
    """Read every bound secret; returns ``{ENV_NAME: value}``."""
    if not bindings:
        return {}
    token = access_token()
    return {name: read_secret(resource, token, name) for name, resource in bindings.items()}


def main(argv: list[str] | None = None) -> int:
    """Resolve the secrets, then replace this process with the command (exit 2 on any error)."""
    try:
        bindings, command = parse_bindings(list(sys.argv[1:] if argv is None else argv))
        env = dict(os.environ)
        env.update(resolve(bindings))
    except SecretError as exc:
        print(f"secret_env: {exc}", file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"secret_env: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0  # not reached: execvpe does not return


if __name__ == "__main__":
    sys.exit(main())
