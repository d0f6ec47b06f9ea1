"""Sending e-mail over SMTP, and the signed tokens of one-click unsubscribe links.

Each e-mail is multipart/alternative, plain text first and HTML last (clients show the last
part they can), with `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058) when there is
an unsubscribe link. SMTP failures are sorted into permanent (5xx replies, refused
recipients, an untrusted certificate) and retryable (4xx replies, connection errors, timeouts).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError, SendError

if TYPE_CHECKING:
    import smtplib
    import ssl
    from email.message import EmailMessage

Security = Literal["starttls", "ssl", "none"]
SECURITIES = ("starttls", "ssl", "none")
_TOKEN_PURPOSE = b"timbel-unsubscribe-v1"
_INVALID_TOKEN = "invalid or tampered unsubscribe link"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: bytes, secret: str) -> bytes:
    # The purpose is part of the MAC so that a signature made with the same secret key for
    # anything else can never pass as an unsubscribe token.
    return hmac.new(secret.encode(), _TOKEN_PURPOSE + b"\x00" + payload, hashlib.sha256).digest()


# Links signed before they carried an issued-at are taken as issued on this day, the day the
# issued-at was added (every such link is at least that old): they expire with the same
# lifetime, on 2027-03-05 with the default 90 days. See `read_unsubscribe_token`.
LEGACY_ISSUED_AT = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
DEFAULT_LINK_DAYS = 90


class UnsubscribeLinkExpiredError(ValueError):
    """A genuine unsubscribe link (signed here) that is older than its lifetime. It says
    whose link it was, so that the page can say what it would have stopped."""

    def __init__(
        self, user: str, channel: str, event: str, issued_at: dt.datetime, expired_at: dt.datetime
    ) -> None:
        self.user, self.channel, self.event = user, channel, event
        self.issued_at, self.expired_at = issued_at, expired_at
        super().__init__(
            f"this unsubscribe link expired on {expired_at:%Y-%m-%d}: it was sent on "
            f"{issued_at:%Y-%m-%d}, and links work for {(expired_at - issued_at).days} days"
        )


def unsubscribe_token(
    user: str, channel: str, event: str, secret: str, *, issued_at: dt.datetime | None = None
) -> str:
    """A URL-safe token that lets `user` unsubscribe from `event` on `channel` until it
    expires, signed with HMAC-SHA256 under `secret` (TIMBEL_SECRET_KEY). The signed payload
    carries when it was issued (`issued_at`, default now; whole seconds since the epoch)."""
    if not secret:
        raise ValueError("TIMBEL_SECRET_KEY is empty; it is needed to sign unsubscribe links")
    issued = int((issued_at or dt.datetime.now(dt.UTC)).timestamp())
    payload = json.dumps([user, channel, event, issued], separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_signature(payload, secret))}"


def _payload(token: str, secret: str) -> tuple[str, str, str, dt.datetime]:
    """(user, channel, event, issued_at) of a token signed with `secret`; a legacy token
    (three fields, no issued-at) is taken as issued at LEGACY_ISSUED_AT."""
    try:
        encoded, signature = token.strip().split(".")
        payload = _unb64(encoded)
        given = _unb64(signature)
    except (ValueError, binascii.Error):
        raise ValueError(_INVALID_TOKEN) from None
    if not secret or not hmac.compare_digest(given, _signature(payload, secret)):
        raise ValueError(_INVALID_TOKEN)
    try:
        values = json.loads(payload)
    except ValueError:
        raise ValueError(_INVALID_TOKEN) from None
    if not isinstance(values, list) or len(values) not in (3, 4):
        raise ValueError(_INVALID_TOKEN)
    if not all(isinstance(v, str) for v in values[:3]):
        raise ValueError(_INVALID_TOKEN)
    if len(values) == 3:
        issued_at = LEGACY_ISSUED_AT
    elif isinstance(values[3], int) and not isinstance(values[3], bool) and values[3] >= 0:
        issued_at = dt.datetime.fromtimestamp(values[3], dt.UTC)
    else:
        raise ValueError(_INVALID_TOKEN)
    user, channel, event = values[:3]
    return user, channel, event, issued_at


def read_unsubscribe_token(
    token: str,
    secret: str,
    *,
    max_age_days: int = DEFAULT_LINK_DAYS,
    now: dt.datetime | None = None,
) -> tuple[str, str, str]:
    """The (user, channel, event) of a token made by `unsubscribe_token`, while it is at
    most `max_age_days` old (TIMBEL_UNSUBSCRIBE_LINK_DAYS).

    Links signed before tokens carried an issued-at (three fields) are neither refused
    outright nor kept for ever: they are taken as issued on LEGACY_ISSUED_AT (2026-12-05),
    the day the issued-at was added, which no such link is younger than. So they keep
    working for the same lifetime as a link sent that day, and expire on that documented
    date (2027-03-05 with the default 90 days). Refusing them at once would break the
    unsubscribe link of every e-mail sent in the weeks before the upgrade, which people
    must be able to use (CAN-SPAM wants an opt-out honoured for 30 days after sending);
    keeping them for ever would leave exactly the never-expiring links this change ends.

    Raises:
        ValueError: the token is garbled, or was not signed with `secret`.
        UnsubscribeLinkExpiredError (a ValueError): it is genuine and expired.
    """
    user, channel, event, issued_at = _payload(token, secret)
    expires = issued_at + dt.timedelta(days=max_age_days)
    if (now or dt.datetime.now(dt.UTC)) > expires:
        raise UnsubscribeLinkExpiredError(user, channel, event, issued_at, expires)
    return user, channel, event


class SmtpSender:
    """Sends e-mail through one SMTP server, one connection per message.

    Args:
        host: SMTP_HOST.
        port: SMTP_PORT (587 for STARTTLS, 465 for SSL, 25 for none).
        security: `starttls` (plain connection upgraded to TLS), `ssl` (TLS from the first
            byte) or `none` (plain: only for a relay on a trusted network).
        user: SMTP_USER, or None to send without logging in.
        password: SMTP_PASSWORD.
        sender: SMTP_FROM, the From address.
        timeout: seconds for the connection and each command.
        ssl_context: certificates to trust; the system's by default.
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        user: str | None,
        password: str | None,
        sender: str,
        timeout: float = 20.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITIES:
            raise ValueError(f"SMTP_SECURITY: {security!r} is not one of {', '.join(SECURITIES)}")
        self.host, self.port, self.security = host, port, security
        self.user, self._password, self.sender = user, password, sender
        self.timeout, self._ssl_context = timeout, ssl_context
        self.channel = f"smtp {host}:{port}"

    def __repr__(self) -> str:
        return (
            f"SmtpSender(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"user={self.user!r}, sender={self.sender!r})"
        )

    def message_id(self, unique: str) -> str:
        """A Message-ID for `unique` (a notification's id), in the domain of the From address;
        the same id on every retry lets receiving servers drop duplicates."""
        domain = self.sender.rpartition("@")[2].strip("<> ") or "timbel.invalid"
        return f"<{unique}@{domain}>"

    def build(
        self,
        to: str,
        subject: str,
        html: str,
        text: str,
        headers: Mapping[str, str] | None = None,
        unsubscribe_url: str | None = None,
        date: dt.datetime | None = None,
    ) -> EmailMessage:
        """The message `send` sends: plain text first, then HTML, with the standard headers."""
        from email.message import EmailMessage
        from email.utils import format_datetime, make_msgid

        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
        domain = self.sender.rpartition("@")[2].strip("<> ") or None
        given = dict(headers or {})
        message["Message-ID"] = given.pop("Message-ID", None) or make_msgid(domain=domain)
        if unsubscribe_url:
            message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        for name, value in given.items():
            message[name] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def send(
        self,
        to: str,
        subject: str,
        html: str,
        text: str,
        headers: Mapping[str, str] | None = None,
        unsubscribe_url: str | None = None,
        date: dt.datetime | None = None,
    ) -> None:
        """Send one e-mail to `to`.

        Raises:
            PermanentSendError: a 5xx reply, the recipient refused, login refused, or the
                server's certificate is not trusted.
            RetryableSendError: a 4xx reply, a connection error or a timeout.
        """
        message = self.build(to, subject, html, text, headers, unsubscribe_url, date)
        try:
            with self._connect() as smtp:
                if self.user:
                    smtp.login(self.user, self._password or "")
                refused = smtp.send_message(message, from_addr=self.sender, to_addrs=[to])
        except SendError:
            raise
        except Exception as error:
            raise self._classify(error, to) from None
        if refused:
            raise self._classify_refused(refused, to)

    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        context = self._ssl_context or ssl.create_default_context()
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise PermanentSendError(
                        self.channel, "the server does not offer STARTTLS (SMTP_SECURITY)"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _classify_refused(
        self, refused: Mapping[str, tuple[int, bytes]], to: str
    ) -> PermanentSendError | RetryableSendError:
        code, reply = next(iter(refused.values()))
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        detail = f"recipient {to} refused: {code} {text}"
        if 400 <= code < 500:  # e.g. 450 mailbox busy, 452 over quota: try again later
            return RetryableSendError(self.channel, detail)
        return PermanentSendError(self.channel, detail)

    def _classify(self, error: Exception, to: str) -> PermanentSendError | RetryableSendError:
        import smtplib
        import ssl

        if isinstance(error, smtplib.SMTPRecipientsRefused):
            return self._classify_refused(error.recipients, to)
        if isinstance(error, smtplib.SMTPResponseException):
            text = error.smtp_error
            reply = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
            detail = f"{type(error).__name__} sending to {to}: {error.smtp_code} {reply}"
            if 500 <= error.smtp_code < 600:
                return PermanentSendError(self.channel, detail)
            return RetryableSendError(self.channel, detail)
        if isinstance(error, ssl.SSLCertVerificationError):
            # An operator has to fix the certificate or the trust store; retrying cannot.
            return PermanentSendError(self.channel, f"TLS certificate not trusted: {error}")
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return PermanentSendError(self.channel, f"not supported by the server: {error}")
        if isinstance(error, TimeoutError):
            return RetryableSendError(self.channel, f"no answer within {self.timeout:g} s")
        if isinstance(error, smtplib.SMTPException | OSError):
            return RetryableSendError(self.channel, f"{type(error).__name__}: {error}")
        return RetryableSendError(self.channel, f"unexpected {type(error).__name__}: {error}")
