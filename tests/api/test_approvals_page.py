"""The approvals page in headless Chromium (Debian's, through Playwright) against the app
served by uvicorn on loopback over PostgreSQL: a team lead logs in with a token, reads the
request's risk reasons, approves with a reason, and the request moves to operations' step
with the approval in the audit log; another team's developer gets no buttons and a 403; a
POST without the CSRF token is refused; a team lead signs in through SSO at the local
issuer (tests/api/oidc_issuer.py, on `localhost`: another site than the page's 127.0.0.1,
as a real issuer is) and approves.

Under CI=true a missing chromium fails the test (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.api.approvals import RISK, UNDECIDED, pending_request, steps_of
from tests.api.conftest import audit_events, secret_for
from tests.api.oidc_issuer import AUDIENCE, CLIENT_ID, Issuer, serve_issuer
from tests.conftest import missing_service
from timbel_dagster.api.app import create_app
from timbel_dagster.ml.risk.words import reason_text
from timbel_dagster.settings import load_settings

CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")

pytestmark = pytest.mark.parametrize("warehouse_backend", ["postgresql"])


def _chromium() -> str:
    for name in CHROMIUM:
        found = name if os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return str(Path(found).resolve())
    missing_service("no chromium to drive (Debian: apt-get install chromium)")
    raise AssertionError  # not reached: missing_service skips or fails


def _listening() -> socket.socket:
    """A socket on a free loopback port, listening before the server thread starts, so the
    browser's first connection waits in the backlog instead of racing the start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def _serving(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app on a free loopback port."""
    with _serving(app, _listening()) as url:
        yield url


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer(host="localhost") as running:
        yield running


@pytest.fixture
def served_with_sso(engine, warehouse_url: str, issuer: Issuer) -> Iterator[str]:
    """The app with SSO sign-in at `issuer`; its public URL is the port it is served on."""
    sock = _listening()
    app = create_app(load_settings(
        timbel_database_url=warehouse_url, timbel_oidc_issuer=issuer.url,
        timbel_oidc_audience=AUDIENCE, timbel_oidc_client_id=CLIENT_ID,
        timbel_public_url=_url(sock),
    ))  # fmt: skip
    with _serving(app, sock) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[object]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def _logged_in(browser, served: str, engine, user: str):
    page = browser.new_context().new_page()
    page.goto(f"{served}/login")
    page.fill("#token", secret_for(engine, user))
    page.click("button[type=submit]")
    page.wait_for_url(f"{served}/approvals")
    assert page.text_content("#who").startswith(f"{user} (")
    return page


def test_a_team_lead_approves_in_the_browser(
    browser, served: str, engine, warehouse_url: str
) -> None:
    number = pending_request(warehouse_url)
    page = _logged_in(browser, served, engine, "lead")
    card = page.locator(f"#request-{number}")
    text = card.inner_text()
    for reason in RISK["reasons"]:
        assert reason_text(reason) in text
    assert "Probability of failure 31.0%" in text and "passes" in text

    # No CSRF token: refused, nothing changes.
    refused = page.request.post(
        f"{served}/approvals/{number}/decide", form={"decision": "approve", "reason": "ok"}
    )
    assert refused.status == 403
    assert steps_of(engine, number) == UNDECIDED

    card.locator("textarea[name=reason]").fill("checkout tested on staging")
    card.locator("button[value=approve]").click()
    page.wait_for_url(f"{served}/approvals?decided={number}")
    assert page.text_content("#notice") == (
        f"request #{number} is now pending, waiting for step 2 (operations)"
    )
    assert page.locator(f"#request-{number}").count() == 0
    assert steps_of(engine, number) == [("approved", "lead"), ("pending", None)]
    [(actor, target, details)] = audit_events(engine, "deploy.approve")
    assert (actor, target, details["reason"]) == (
        "lead", f"request #{number}", "checkout tested on staging"
    )  # fmt: skip


def test_another_teams_developer_cannot_decide(
    browser, served: str, engine, warehouse_url: str
) -> None:
    number = pending_request(warehouse_url)
    page = _logged_in(browser, served, engine, "dev_pay")
    assert page.locator("form.decide").count() == 0
    assert page.locator("#empty").is_visible()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    response = page.request.post(
        f"{served}/approvals/{number}/decide",
        form={"csrf": csrf, "decision": "approve", "reason": "looks fine"},
    )
    assert response.status == 403
    assert steps_of(engine, number) == UNDECIDED
    assert [(a, d["status"]) for a, _, d in audit_events(engine, "api.refused")] == [
        ("dev_pay", 403)
    ]


def test_a_team_lead_signs_in_with_sso_and_approves(
    browser, served_with_sso: str, engine, warehouse_url: str, issuer: Issuer
) -> None:
    served = served_with_sso
    number = pending_request(warehouse_url)
    page = browser.new_context().new_page()
    issuer.consent_page = True
    page.goto(f"{served}/login")
    page.click("#sso")
    # At the issuer (another site) the user approves; back at the callback, then on to the
    # approvals with the new session (a navigation the issuer's page started: a redirect
    # would carry no SameSite=Strict cookie in a browser that weighs the redirect chain).
    page.click("#approve")
    page.wait_for_url(f"{served}/approvals")
    assert page.text_content("#who") == "lead (team_lead)"
    flow = [p.split("?")[0] for p in issuer.requests if p.startswith(("/authorize", "/token"))]
    assert flow == ["/authorize", "/token"]

    card = page.locator(f"#request-{number}")
    card.locator("textarea[name=reason]").fill("signed in through SSO, checkout tested")
    card.locator("button[value=approve]").click()
    page.wait_for_url(f"{served}/approvals?decided={number}")
    assert steps_of(engine, number) == [("approved", "lead"), ("pending", None)]
    [(actor, target, details)] = audit_events(engine, "deploy.approve")
    assert (actor, target, details["reason"]) == (
        "lead", f"request #{number}", "signed in through SSO, checkout tested"
    )  # fmt: skip
