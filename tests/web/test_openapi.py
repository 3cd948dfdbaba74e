"""schemathesis against /openapi.json: generated requests to every documented API operation
never produce a server error, and every status the API answers is one it documents.

Called as a privacy officer (cookie session + X-CSRF-Token: the role that reaches most of the
API) on a home with users but no hospital; example counts are kept small for CI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from phiguard.web import create_app
from phiguard.web.config import WebSettings
from tests.web.conftest import PASSWORD, Account, Browser


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    root: Path = tmp_path_factory.mktemp("openapi")
    clock = FixedClock(datetime(2026, 4, 3, 9, 0, tzinfo=HKT))
    app = App.init(Settings(home=root / "home"), clock=clock)
    api = create_app(app, WebSettings(token_cache_seconds=0, login_max_failures_address=10_000))
    enrol = api.state.console.users.create("po-fuzz", "privacy_officer", PASSWORD, actor="test")
    from fastapi.testclient import TestClient

    b = Browser(TestClient(api), clock)
    b.login(Account("po-fuzz", "privacy_officer", PASSWORD, enrol.totp_secret))
    cookie = b.client.cookies.get("phiguard_session")
    yield api, {"Cookie": f"phiguard_session={cookie}", "X-CSRF-Token": b.csrf}
    app.close()


def test_api_conforms(running: tuple[Any, dict[str, str]]) -> None:
    api, headers = running
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(
                f"{operation.method.upper()} {operation.path}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            )
    assert operations > 30 and len(calls) > 2 * operations
    assert failures == [], failures
