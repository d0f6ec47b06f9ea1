"""A local OIDC issuer for the tests: an RSA key, its JWKS and the discovery document served
over HTTP on loopback, and a signer of tokens."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "timbel-api"
KID = "test-key-1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    def __init__(self, url: str, key: rsa.RSAPrivateKey) -> None:
        self.url, self.key = url, key
        self.requests: list[str] = []

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [public | {"kid": KID, "use": "sig", "alg": "RS256"}]}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        base = {"iss": self.url, "aud": AUDIENCE, "sub": "subject-lead",
                "preferred_username": "lead", "iat": now, "nbf": now,
                "exp": now + dt.timedelta(minutes=5)}  # fmt: skip
        return {k: v for k, v in (base | overrides).items() if v is not None}

    def token(self, *, key: rsa.RSAPrivateKey | None = None, kid: str = KID, **claims) -> str:
        return jwt.encode(
            self.claims(**claims), key or self.key, algorithm="RS256", headers={"kid": kid}
        )


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.requests.append(self.path)
            # Any prefix: a client configured with a wrong issuer URL gets this issuer's
            # document (as a proxy might serve it), which names the real issuer.
            if self.path.endswith("/.well-known/openid-configuration"):
                body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:  # keep the test output clean
            pass

    return Handler


@contextmanager
def serve_issuer() -> Iterator[Issuer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    issuer = Issuer(f"http://127.0.0.1:{server.server_address[1]}", new_key())
    server.RequestHandlerClass = _handler(issuer)
    # A short poll: shutdown() waits for the loop to look (the default 0.5 s cost each test).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
