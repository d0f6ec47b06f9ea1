"""Fixtures for the notification tests: users in a migrated warehouse, a clock tests move by
hand, and real SMTP servers (aiosmtpd) on loopback, plain and with TLS."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

USERS = [
    # name, display name, e-mail, Slack id
    ("ann", "Ann Example", "ann@example.com", "U0ANN"),
    ("bob", "Bob Example", "bob@example.com", None),
    ("cid", "Cid Example", None, "U0CID"),
    ("dee", None, "dee@example.com", "U0DEE"),
]


class Clock:
    """Aware UTC time that only moves when a test moves it."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    """The migrated warehouse with the users above."""
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.ids import stable_id
    from timbel_dagster.warehouse.schema.models import User
    from timbel_dagster.warehouse.store.upsert import bulk_upsert

    engine = get_engine(warehouse_url)
    rows = [
        {
            "id": stable_id("users", name),
            "source": "test",
            "name": name,
            "display_name": display,
            "email": email,
            "role": "developer",
            "team": "platform",
            "slack_id": slack_id,
            "created_at": START,
            "updated_at": START,
        }
        for name, display, email, slack_id in USERS
    ]
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
    return engine


def free_port() -> int:
    """A port nothing listens on (bound once and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives, or answers with a chosen reply."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    rcpt_reply: str | None = None  # e.g. "550 5.1.1 no such user"
    data_reply: str | None = None  # e.g. "451 4.3.0 try again later"
    port: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(content) for _, _, content in self.received]  # type: ignore[misc]


def _serve(inbox: Inbox, **options: Any) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    """A plain SMTP server on loopback."""
    yield from _serve(Inbox())


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with `cryptography`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[Inbox]:
    """An SMTP server that refuses mail until the client has started TLS."""
    yield from _serve(Inbox(), tls_context=certificate.server_context(), require_starttls=True)


@pytest.fixture
def ssl_server(certificate: Certificate) -> Iterator[Inbox]:
    """An SMTP server speaking TLS from the first byte (port 465 style)."""
    yield from _serve(Inbox(), ssl_context=certificate.server_context())
