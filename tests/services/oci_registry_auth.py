"""Credentials for the test registry: bcrypt htpasswd entries, self-signed certificates
for TLS, and a loopback fake of the Docker token spec's authorization service (the registry
that checks its tokens is the real one)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

USER, PASSWORD = "alice", "s3cret-Pass"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file (the registry accepts nothing else): the `bcrypt`
    module, else `htpasswd` (apache2-utils), else the C library's crypt() (Python < 3.13)."""
    try:
        import bcrypt  # type: ignore[import-not-found]

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-nbB", "-C", "4", "user", password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.strip().split(":", 1)[1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # removed in Python 3.13
        except ImportError:
            raise FileNotFoundError("no bcrypt: install python bcrypt or apache2-utils") from None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        raise FileNotFoundError("the C library's crypt() has no bcrypt")
    return hashed


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def self_signed(common_name: str) -> tuple[Any, Any]:
    """An RSA key and a self-signed CA certificate for it, valid for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_tls(workdir: Path) -> dict[str, str]:
    """A self-signed certificate and key (`workdir/tls.crt`, `tls.key`) for 127.0.0.1: the
    registry's `http.tls`, or the token server's."""
    from cryptography.hazmat.primitives import serialization

    key, cert = self_signed("127.0.0.1")
    (workdir / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return {"certificate": str(workdir / "tls.crt"), "key": str(workdir / "tls.key")}


class TokenIssuer:
    """The authorization service of the Docker token spec, as a loopback fake: it answers
    `GET /token?service=&scope=` for known basic credentials with an RS256 JWT whose `x5c`
    header carries the certificate the registry's config trusts."""

    service, issuer = "timbel-test-registry", "timbel-test-issuer"

    def __init__(self, workdir: Path, users: dict[str, str], lifetime: int = 300) -> None:
        from cryptography.hazmat.primitives import serialization

        self.users, self.lifetime = users, lifetime
        self._key, cert = self_signed(self.issuer)
        self.cert_path = workdir / "token-issuer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        # each token request: user, scopes and its Authorization header (None without one)
        self.requests: list[dict[str, Any]] = []

    def token(self, scopes: list[str], subject: str = USER) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, rest = scope.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64url(signature)}"

    def handle(self, request: Any) -> Any:
        """The token endpoint (a werkzeug request in, a werkzeug response out)."""
        from werkzeug import Response

        auth = request.authorization
        user = auth.username if auth else None
        scopes = request.args.getlist("scope")
        header = request.headers.get("Authorization")
        self.requests.append({"user": user, "scopes": scopes, "authorization": header})
        if user is None or self.users.get(user) != (auth.password if auth else None):
            return Response(json.dumps({"details": "incorrect username or password"}), 401)
        if request.args.get("service") != self.service:
            return Response(json.dumps({"details": "unknown service"}), 400)
        body = {"token": self.token(scopes, user), "expires_in": self.lifetime}
        return Response(json.dumps(body), 200, content_type="application/json")

    def auth(self, repository: str) -> BearerAuth:
        """Credentials that may push to `repository` (for the test's own pushes)."""
        return BearerAuth(self.token([f"repository:{repository}:pull,push"]))


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.value = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.value}"
        return request
