"""The approvals page in headless Chromium (Debian's, through Playwright) against the app
served by uvicorn on loopback over PostgreSQL: a team lead logs in with a token, reads the
request's risk reasons, approves with a reason, and the request moves to operations' step
with the approval in the audit log; another team's developer gets no buttons and a 403; a
POST without the CSRF token is refused.

Under CI=true a missing chromium fails the test (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.api.approvals import RISK, UNDECIDED, pending_request, steps_of
from tests.api.conftest import audit_events, secret_for
from tests.conftest import missing_service
from timbel_dagster.ml.risk.words import reason_text

CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")

pytestmark = pytest.mark.parametrize("warehouse_backend", ["postgresql"])


def _chromium() -> str:
    for name in CHROMIUM:
        found = name if os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return str(Path(found).resolve())
    missing_service("no chromium to drive (Debian: apt-get install chromium)")
    raise AssertionError  # not reached: missing_service skips or fails


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app on a free loopback port. The socket listens before the server thread starts,
    so the browser's first connection waits in the backlog instead of racing the start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
