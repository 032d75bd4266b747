"""The OpenAPI document against the running app: schemathesis generates requests for every operation from the
document itself (anonymous, then as a coordinator), sends them to the app on 127.0.0.1 and checks each answer:
no server error, a documented status, the documented content type and the documented body schema.

Short and repeatable: a few derandomized examples per operation (SCHEMATHESIS_EXAMPLES to raise it;
SCHEMATHESIS_SEED=<n> for a different, still reproducible, draw).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from events import auth
from tests.conftest import make_person

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "4"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "")


def _checks():
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(base_url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Every operation, EXAMPLES cases each; returns (requests sent, failures as one line each)."""
    import schemathesis
    from schemathesis.core.failures import FailureGroup

    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")
    checks = _checks()
    sent = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, derandomize=not SEED, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(int(SEED or 0))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            label = case.operation.label
            sent[label] += 1
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as found:  # collected (a BaseExceptionGroup), so one run reports every operation
                for failure in found.exceptions:
                    message = " ".join(str(getattr(failure, "message", "") or failure).split())[:200]
                    failures.append(f"{label} -> {response.status_code}: {getattr(failure, 'title', '')}: {message}"
                                    f"\n    {case.as_curl_command()[:300]}")
            except Exception as exc:
                first = str(exc).strip().splitlines()
                failures.append(f"{label} -> {response.status_code}: {first[0] if first else exc!r}")

        run()
    return sum(sent.values()), failures


@pytest.mark.parametrize("who", ["anonymous", "coordinator"])
async def test_the_api_does_what_its_openapi_document_says(live_server, who):
    headers = {}
    if who == "coordinator":
        person = await make_person("coordinator", "schemathesis@example.jp")
        headers = {"Authorization": f"Bearer {await auth.create_api_token(person, 'schemathesis')}"}
    import asyncio

    sent, failures = await asyncio.get_running_loop().run_in_executor(None, fuzz, live_server, headers)
    assert sent > 100
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(sorted(set(failures))[:80])
