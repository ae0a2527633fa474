"""Property-based fuzzing of the inference API with schemathesis, against its own OpenAPI schema.

For every documented operation, schemathesis generates bodies that follow the schema (positive)
and bodies that break it (negative). Every answer must not be a 5xx and must match the documented
response schema; a body the schema allows must be accepted and one it forbids rejected with a 4xx
(schemathesis' default checks). The app runs in-process over ASGI with the real tiny model, so
validation, the runner, the policy and the explainer are all exercised. The examples follow the
profile of ``hypothesis_profiles.py``: the same ones on every run unless
``HYPOTHESIS_PROFILE=explore``.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis_profiles  # noqa: F401  (registers and loads the settings profile)
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from sentiment_hf.serve import create_app

EXAMPLES_PER_MODE = 30


@pytest.fixture(scope="module")
def api_schema(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(
        tiny_run,
        request_log=tmp_path_factory.mktemp("fuzz") / "requests.db",
        max_text_chars=200,
        max_texts_per_request=4,
        max_body_bytes=20_000,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_the_schema_documents_the_api(api_schema) -> None:
    found = {(op.method.upper(), op.path) for op in _operations(api_schema)}
    assert {("POST", "/predict"), ("POST", "/explain"), ("GET", "/health")} <= found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_generated_request_is_answered_within_the_schema(api_schema, mode) -> None:
    checked = 0
    for operation in _operations(api_schema):
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            continue  # nothing to break in a request without inputs (GET /health)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_MODE, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate()

        check()
        checked += 1
    assert checked >= (2 if mode is GenerationMode.NEGATIVE else 3)
