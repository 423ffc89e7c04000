"""A property-based fuzzer driven by GET /api/v1/openapi.json (issue 17, "Prove it holds"):
schemathesis generates requests for every operation of the document, valid ones and invalid ones,
against a live server (waitress on a loopback port, a fresh database with the demo accounts, the
bundled diagrams and a few cases), as an agent and as an administrator.

Checks on every answer: no 5xx; every 4xx is a JSON object with ``error`` and ``message``; an
answer conforms to its declared schema and content type; a declared operation answers only
statuses it declares. Per operation and user: schemathesis' boundary cases, then Hypothesis draws of
valid and of invalid requests, and valid ones again on a case and a task that exist. Bounded and
repeatable: Hypothesis derandomized (a fixed seed), no example database, a few examples per
operation and mode (about a minute on two cores); ``KEFU_FUZZ_EXAMPLES`` scales them,
``KEFU_FUZZ_SECONDS`` caps the run (the operations left get one example each past it)."""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import INTAKE

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("KEFU_FUZZ_EXAMPLES", "20"))      # per operation, mode and user
BUDGET = float(os.environ.get("KEFU_FUZZ_SECONDS", "150"))     # seconds before the run thins out
USERS = ("agent1", "admin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Live:
    """The server under test and a way to give its demo accounts fresh tokens (a fuzzed logout or
    password change revokes them; tokens are minted, not asked for, so that the fuzzed sign-ins
    throttling this address do not lock the run out)."""

    url: str
    token: Callable[[str], str]
    ids: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def live(app) -> Iterator[Live]:
    from waitress.server import create_server

    from connectors.billing import demo_data
    from engine.people import user_by_name
    from web.auth import issue_token
    from web.extensions import db

    app.config["TESTING"] = False  # answer as production does: errors through the handlers, not raised
    demo_data.seed(app.extensions["kefu_billing"], subscribers=40)  # for the customer and dunning routes
    port = _free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def token(username: str) -> str:
        with app.app_context():
            try:
                user = user_by_name(db.session, username)
                assert user is not None
                return issue_token(user)
            finally:
                db.session.remove()

    live = Live(f"http://127.0.0.1:{port}", token)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token('agent1')}"
    for _ in range(2):  # real cases and tasks for the path parameters to meet
        started = http.post(live.url + "/api/v1/processes/complaint/instances", json={"data": INTAKE}, timeout=30)
        assert started.status_code == 201, started.text
        live.ids["instance_id"] = started.json()["id"]
    task = http.get(live.url + "/api/v1/tasks?scope=group", timeout=30).json()["items"][0]
    live.ids["task_id"] = task["id"]
    http.close()
    yield live
    server.close()  # the daemon thread's loop ends with the test process


@dataclass
class Findings:
    failures: dict[tuple[str, str], str] = field(default_factory=dict)   # (operation, kind) → first sample
    statuses: Counter[int] = field(default_factory=Counter)
    requests: int = 0

    def add(self, operation: str, kind: str, detail: str) -> None:
        self.failures.setdefault((operation, kind), detail)


def _error_body_problem(response: Any) -> str | None:
    """What is wrong with a 4xx answer's body, if anything (the contract's error body)."""
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        return f"not JSON: {response.content[:200]!r}"
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("error", "message")):
        return f"no error/message: {str(body)[:200]}"
    return None


@dataclass
class Caller:
    """One user's way of sending an operation's cases and checking the answers."""

    live: Live
    findings: Findings
    username: str
    operation: Any
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.live.token(self.username)}"}
        self.label = self.operation.label
        self.checks = [response_schema_conformance, content_type_conformance]
        if not self.operation.definition.raw.get("x-kefu-undeclared"):
            self.checks.append(status_code_conformance)  # a declared operation declares its statuses

    def exercise(self, case: Any, mode: GenerationMode) -> None:
        findings, label = self.findings, self.label
        replay = case.as_curl_command(headers={"Authorization": "Bearer …"}, base_url=self.live.url)
        try:
            response = case.call(base_url=self.live.url, session=self.http, headers=self.headers, timeout=30)
        except requests.RequestException as exc:  # the server dropped the connection: as bad as a 500
            findings.add(label, "no answer", f"{replay}\n→ {type(exc).__name__}: {exc}")
            return
        findings.requests += 1
        findings.statuses[response.status_code] += 1
        if response.status_code >= 500:
            findings.add(label, f"{response.status_code}", f"{replay}\n→ {response.content[:300]!r}")
            return
        if 400 <= response.status_code < 500 and (problem := _error_body_problem(response)):
            findings.add(label, f"{response.status_code} body", f"{replay}\n→ {problem}")
        if mode is GenerationMode.NEGATIVE:
            return  # an invalid request: any 4xx will do, its body is the error body (checked above)
        try:
            case.validate_response(response, checks=self.checks, headers=self.headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # a failure (group): it contradicts the document
            findings.add(label, "conformance", f"{replay}\n→ {str(exc)[:600]}")

    def fuzz(self, mode: GenerationMode, examples: int, path_parameters: dict[str, int] | None = None) -> None:
        """``examples`` cases drawn by Hypothesis (derandomized: the same ones every run)."""
        strategy = self.operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: Any) -> None:
            self.exercise(case, mode)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - e.g. nothing to negate in an operation without inputs
            if type(exc).__name__ not in ("Unsatisfiable", "SkipTest", "Skipped"):
                self.findings.add(self.label, "generation", f"{type(exc).__name__}: {str(exc)[:300]}")

    def boundaries(self, limit: int) -> None:
        """Schemathesis' coverage cases (boundary values, missing and wrong-typed fields, for valid
        and invalid input; deterministic by construction), at most ``limit`` of them."""
        schema = self.operation.schema
        config = schema.config.generation_for(operation=self.operation, phase="coverage")
        cases = schema.iter_coverage_cases(self.operation, generation_modes=list(GenerationMode),
                                           generation_config=config)
        for case in itertools.islice(cases, limit):
            self.exercise(case, case.meta.generation.mode if case.meta else GenerationMode.POSITIVE)


def test_fuzz_every_operation(live: Live) -> None:
    schema = schemathesis.openapi.from_url(live.url + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    findings = Findings()
    started = time.monotonic()
    for operation in operations:
        examples = EXAMPLES if time.monotonic() - started < BUDGET else 1
        path_names = {p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"}
        for username in USERS:
            caller = Caller(live, findings, username, operation)
            caller.boundaries(examples * 3)
            caller.fuzz(GenerationMode.POSITIVE, examples)
            caller.fuzz(GenerationMode.NEGATIVE, examples)
            known = {name: live.ids[name] for name in path_names if name in live.ids}
            if known:  # the same on objects that exist (random ids mostly meet 404)
                caller.fuzz(GenerationMode.POSITIVE, examples, known)
            caller.http.close()
    elapsed = time.monotonic() - started
    print(f"\nfuzzed {len(operations)} operations with {findings.requests} requests in {elapsed:.0f} s; "
          f"statuses {dict(sorted(findings.statuses.items()))}")
    report = "\n\n".join(f"{operation} [{kind}]\n{detail}" for (operation, kind), detail in findings.failures.items())
    assert not findings.failures, f"{len(findings.failures)} finding(s):\n\n{report}"
    assert findings.requests > len(operations) * 4

