"""The SMTP sender against real SMTP servers (aiosmtpd) on loopback, and signed tokens."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.notify.conftest import Certificate, Inbox, free_port
from timbel_dagster.notify import email
from timbel_dagster.notify.email import SmtpSender, read_unsubscribe_token, unsubscribe_token
from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError

UNSUBSCRIBE = "https://timbel.example.com/unsubscribe?token=abc"


def _sender(port: int, security: str = "none", **options: object) -> SmtpSender:
    return SmtpSender(
        host="127.0.0.1",
        port=port,
        security=security,  # type: ignore[arg-type]
        user=None,
        password=None,
        sender="Timbel <timbel@example.com>",
        timeout=5,
        **options,  # type: ignore[arg-type]
    )


def _send(sender: SmtpSender, **changes: object) -> None:
    values: dict = {
        "to": "ann@example.com",
        "subject": "[Timbel] Pipeline failed: shop/api",
        "html": "<p>The pipeline <strong>shop/api</strong> failed.</p>",
        "text": "The pipeline shop/api failed.\n",
        "unsubscribe_url": UNSUBSCRIBE,
        "date": dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
    }
    values.update(changes)
    sender.send(**values)


def test_multipart_alternative_with_unsubscribe_headers(smtp_server: Inbox) -> None:
    _send(_sender(smtp_server.port), headers={"Message-ID": "<n1@example.com>", "X-Timbel": "1"})
    mail_from, rcpt_tos, _ = smtp_server.received[0]
    assert (mail_from, rcpt_tos) == ("timbel@example.com", ["ann@example.com"])
    message = smtp_server.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().rstrip() == "The pipeline shop/api failed."
    assert "<strong>shop/api</strong>" in parts[1].get_content()
    assert message["Subject"] == "[Timbel] Pipeline failed: shop/api"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == "<n1@example.com>"
    assert message["Date"] == "Mon, 02 Nov 2026 09:00:00 +0000"
    assert message["X-Timbel"] == "1"


def test_without_a_link_there_are_no_unsubscribe_headers(smtp_server: Inbox) -> None:
    _send(_sender(smtp_server.port), unsubscribe_url=None)
    message = smtp_server.messages[0]
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message["Message-ID"].endswith("@example.com>")


def test_message_id_uses_the_sender_domain() -> None:
    assert _sender(25).message_id("abc") == "<abc@example.com>"


def test_starttls_with_a_trusted_certificate(
    starttls_server: Inbox, certificate: Certificate
) -> None:
    sender = _sender(starttls_server.port, "starttls", ssl_context=certificate.client_context())
    _send(sender)
    assert len(starttls_server.messages) == 1


def test_starttls_refuses_an_untrusted_certificate(starttls_server: Inbox) -> None:
    with pytest.raises(PermanentSendError, match="certificate not trusted"):
        _send(_sender(starttls_server.port, "starttls"))
    assert starttls_server.received == []


def test_starttls_required_but_not_offered(smtp_server: Inbox) -> None:
    with pytest.raises(PermanentSendError, match="does not offer STARTTLS"):
        _send(_sender(smtp_server.port, "starttls"))


def test_plain_is_refused_by_a_server_requiring_starttls(starttls_server: Inbox) -> None:
    with pytest.raises(PermanentSendError, match="530"):
        _send(_sender(starttls_server.port, "none"))


def test_implicit_tls(ssl_server: Inbox, certificate: Certificate) -> None:
    _send(_sender(ssl_server.port, "ssl", ssl_context=certificate.client_context()))
    assert len(ssl_server.messages) == 1


@pytest.mark.parametrize(
    ("where", "reply", "error"),
    [
        ("rcpt", "550 5.1.1 no such user", PermanentSendError),
        ("rcpt", "450 4.2.1 mailbox busy", RetryableSendError),
        ("data", "554 5.7.1 message refused", PermanentSendError),
        ("data", "451 4.3.0 try again later", RetryableSendError),
    ],
)
def test_smtp_replies_are_sorted(
    smtp_server: Inbox, where: str, reply: str, error: type[Exception]
) -> None:
    setattr(smtp_server, f"{where}_reply", reply)
    with pytest.raises(error, match=reply.split()[0]) as raised:
        _send(_sender(smtp_server.port))
    assert type(raised.value) is error
    assert "ann@example.com" in str(raised.value)


def test_server_down_is_retryable() -> None:
    with pytest.raises(RetryableSendError, match=r"smtp 127\.0\.0\.1:"):
        _send(_sender(free_port()))


def test_unknown_security_is_refused() -> None:
    with pytest.raises(ValueError, match="SMTP_SECURITY: 'tls' is not one of"):
        _sender(25, "tls")


def test_token_round_trips() -> None:
    token = unsubscribe_token("ann", "email", "alert_fired", "key-1")
    assert read_unsubscribe_token(token, "key-1") == ("ann", "email", "alert_fired")
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL as is


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _flip(t, 2),  # the payload
        lambda t: _flip(t, len(t) - 3),  # the signature
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "",
        lambda t: "not base64!.@@@",
        lambda t: unsubscribe_token("ann", "email", "alert_fired", "another key"),
    ],
)
def test_a_tampered_token_fails(tamper) -> None:
    token = unsubscribe_token("ann", "email", "alert_fired", "key-1")
    with pytest.raises(ValueError, match=r"^invalid or tampered unsubscribe link$"):
        read_unsubscribe_token(tamper(token), "key-1")


def test_a_token_needs_a_key() -> None:
    with pytest.raises(ValueError, match="TIMBEL_SECRET_KEY"):
        unsubscribe_token("ann", "email", "*", "")


def _legacy_token(user: str, channel: str, event: str, secret: str) -> str:
    """A token as signed before tokens carried an issued-at (three fields)."""
    payload = json.dumps([user, channel, event], separators=(",", ":")).encode()
    return f"{email._b64(payload)}.{email._b64(email._signature(payload, secret))}"


SENT = dt.datetime(2027, 1, 10, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("age", "days", "works"),
    [
        (dt.timedelta(0), 90, True),
        (dt.timedelta(days=90), 90, True),  # the last moment it works
        (dt.timedelta(days=90, seconds=1), 90, False),
        (dt.timedelta(days=31), 30, False),
        (dt.timedelta(days=400), 3650, True),
    ],
)
def test_a_token_carries_when_it_was_issued_and_expires(
    age: dt.timedelta, days: int, works: bool
) -> None:
    token = unsubscribe_token("ann", "email", "alert_fired", "key-1", issued_at=SENT)
    read = lambda: read_unsubscribe_token(token, "key-1", max_age_days=days, now=SENT + age)  # noqa: E731
    if works:
        assert read() == ("ann", "email", "alert_fired")
        return
    with pytest.raises(email.UnsubscribeLinkExpiredError) as expired:
        read()
    error = expired.value
    assert (error.user, error.channel, error.event) == ("ann", "email", "alert_fired")
    assert (error.issued_at, error.expired_at) == (SENT, SENT + dt.timedelta(days=days))
    assert str(error) == (
        f"this unsubscribe link expired on {SENT + dt.timedelta(days=days):%Y-%m-%d}: it was "
        f"sent on 2027-01-10, and links work for {days} days"
    )


def test_a_legacy_token_counts_as_issued_on_the_documented_day() -> None:
    """Links signed before the issued-at existed work until LEGACY_ISSUED_AT + the lifetime
    (2027-03-05 with the default 90 days), then are expired like any other."""
    token = _legacy_token("ann", "email", "*", "key-1")
    assert email.LEGACY_ISSUED_AT.isoformat() == "2026-12-05T00:00:00+00:00"
    last = dt.datetime(2027, 3, 5, tzinfo=dt.UTC)
    assert read_unsubscribe_token(token, "key-1", now=last) == ("ann", "email", "*")
    with pytest.raises(email.UnsubscribeLinkExpiredError, match="expired on 2027-03-05: it was "
                       "sent on 2026-12-05"):  # fmt: skip
        read_unsubscribe_token(token, "key-1", now=last + dt.timedelta(seconds=1))
    # A tampered legacy token is still just invalid.
    with pytest.raises(ValueError, match=r"^invalid or tampered unsubscribe link$"):
        read_unsubscribe_token(_flip(token, 2), "key-1", now=last)


@pytest.mark.parametrize("issued", ["2027-01-10", -1, True, 1.5, None])
def test_a_signed_payload_with_a_bad_issued_at_is_invalid(issued: object) -> None:
    payload = json.dumps(["ann", "email", "*", issued]).encode()
    token = f"{email._b64(payload)}.{email._b64(email._signature(payload, 'key-1'))}"
    with pytest.raises(ValueError, match=r"^invalid or tampered unsubscribe link$"):
        read_unsubscribe_token(token, "key-1")
