"""Schemathesis against every operation of the OpenAPI document, in process (SQLite).

The document comes from the running application (``create_app`` on a seeded SQLite world);
each operation gets a few generated requests (valid and invalid) as a signed-in employee
with broad roles and as an auditor. Checks: no 5xx (``not_a_server_error``), every answer
matches its documented schema (``response_schema_conformance``), and, for the operations of
the core API (sessions, research, audit, access, adjustments), every status code is
documented (``status_code_conformance``). Bounded: a handful of examples per operation, no
shrinking, so the file takes well under a minute and a half.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from idrs import migrate
from idrs.api.app import create_app
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.people import auth, passwords, service, totp
from tests.integration import factories as f

#: Tags of the operations whose every status code must be documented (the other packages
#: document theirs as they go; their answers are still checked for 5xx and schema).
STRICT_TAGS = {"sessions", "research", "audit", "access", "adjustments"}
BROAD_ROLES = "examiner,manager,privacy_analyst,privacy_officer,auditor"
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
#: examples per operation, identity and mode (valid, invalid)
EXAMPLES = 3


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    saved = passwords._HASHER, passwords._DUMMY_HASH
    passwords.use_weak_hashing_for_tests_only()
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    Keyring.create(tmp / "home")
    # several live sessions per employee: the fuzzer's DELETE /sessions/current ends one
    settings_ = Settings(database_url=url, home=tmp / "home", concurrent_sessions=True)
    app = App(settings=settings_, engine=engine, keyring=Keyring.load(tmp / "home"),
              clock=FakeClock(START))
    f.carter_household(app)
    creds = {
        "broad": service.create_employee(app, unax_attested_at=START, seid="FZ001", name="F",
                                         tin="900-49-0001", roles=BROAD_ROLES),
        "auditor": service.create_employee(app, unax_attested_at=START, seid="FZ002", name="A",
                                           tin="900-49-0002", roles="auditor"),
    }
    f.open_case(app, "FZ001", f.CARTER, "C-1")
    api = create_app(app)

    tokens: dict[str, str] = {}

    def token(who: str, *, fresh: bool = False) -> str:
        """The identity's session token; ``fresh``: a new session (for the sign-out call)."""
        if fresh or who not in tokens:
            c = creds[who]
            app.clock.advance(seconds=30)  # a new TOTP step for each sign-in
            signed = auth.sign_in(app, c["seid"], c["password"],
                                  totp.code_at(c["totp_secret"], app.clock.now()), "test")
            if fresh:
                return signed.token
            tokens[who] = signed.token
        return tokens[who]

    yield {"app": app, "api": api, "token": token}
    engine.dispose()
    passwords._HASHER, passwords._DUMMY_HASH = saved


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_world: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_world["api"])


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is shown as found
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _fuzz(operation: Any, mode: GenerationMode, who: str, fuzz_world: dict[str, Any]) -> None:
    checks = [not_a_server_error, response_schema_conformance]
    if STRICT_TAGS & set(operation.definition.raw.get("tags", [])):
        checks.append(status_code_conformance)

    signs_out = operation.method.upper() == "DELETE" and operation.path.endswith("/current")

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        token = fuzz_world["token"](who, fresh=signs_out)
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

    run()


@pytest.mark.parametrize("who", ["broad", "auditor"])
def test_every_operation_answers_within_its_documentation(who, fuzz_schema, fuzz_world):
    """Positive and negative examples of every operation; every failure is collected and
    reported together (operation, mode, the check's message)."""
    failures: list[str] = []
    operations = 0
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            name = f"{operation.method.upper()} {operation.path}"
            try:
                _fuzz(operation, mode, who, fuzz_world)
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # one failure must not hide others
                message = str(exc).strip().replace("\n\n", "\n")[:1500]
                failures.append(f"{name} [{mode.value}]: {message}")
    assert operations > 20
    assert not failures, f"{len(failures)} failing:\n\n" + "\n\n".join(failures)
