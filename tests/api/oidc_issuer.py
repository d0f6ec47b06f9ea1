"""A local OIDC issuer for the tests: an RSA key, its JWKS and the discovery document served
over HTTP on loopback, and a signer of tokens; and a tiny authorization server for the
approvals page's sign-in: /authorize approves the configured user at once and redirects
back with a code, /token redeems a code once, for its client and redirect URI, only with
the verifier of its PKCE challenge (S256), and answers an ID token carrying the nonce."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "timbel-api"
KID = "test-key-1"
CLIENT_ID = "timbel-page"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    def __init__(self, url: str, key: rsa.RSAPrivateKey) -> None:
        self.url, self.key = url, key
        self.requests: list[str] = []
        # The authorization server: who /authorize signs in (claims of their ID token), what
        # it answers instead (an OAuth error code), and the client's secret (None: public).
        self.user: dict[str, Any] = {"sub": "subject-lead", "preferred_username": "lead"}
        self.id_token_overrides: dict[str, Any] = {}
        self.deny: str | None = None
        # A browser test asks for a page with a link instead of the redirect: the user's
        # click there starts the navigation back on the issuer's site, as with a real one.
        self.consent_page = False
        self.client_secret: str | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_errors: list[str] = []

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

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """(status, Location or error text) for an authorization request."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or not redirect.startswith("http"):
            return 400, "unknown client_id or no redirect_uri"  # never redirect then
        back = {"state": query["state"]} if "state" in query else {}
        problem = self._authorize_problem(query)
        if problem or self.deny:
            back |= {"error": problem or self.deny, "error_description": "test issuer says no"}
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "redirect_uri": redirect,
                "challenge": query["code_challenge"],
                "nonce": query.get("nonce"),
            }
            back["code"] = code
        return 302, f"{redirect}?{urlencode(back)}"

    @staticmethod
    def _authorize_problem(query: dict[str, str]) -> str | None:
        if query.get("response_type") != "code":
            return "unsupported_response_type"
        if "openid" not in query.get("scope", "").split():
            return "invalid_scope"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "invalid_request"  # this server demands PKCE with S256
        return None

    def redeem(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict]:
        """(status, JSON) of the token endpoint for an authorization_code grant."""
        if not self._client_ok(form, authorization):
            return self._error(401, "invalid_client")
        if form.get("grant_type") != "authorization_code":
            return self._error(400, "unsupported_grant_type")
        issued = self.codes.pop(form.get("code", ""), None)  # single use: gone either way
        if issued is None:
            return self._error(400, "invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != issued["redirect_uri"]:
            return self._error(400, "invalid_grant", "redirect_uri differs")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
            return self._error(400, "invalid_grant", "code_verifier does not match")
        claims = {"aud": CLIENT_ID, "nonce": issued["nonce"]} | self.user
        return 200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.token(**(claims | self.id_token_overrides)),
        }

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if self.client_secret is None:
            return form.get("client_id") == CLIENT_ID
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            client, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        # RFC 6749 2.3.1: the client urlencodes both before Basic.
        return scheme == "Basic" and (unquote(client), unquote(secret)) == (
            CLIENT_ID, self.client_secret
        )  # fmt: skip

    def _error(self, status: int, code: str, description: str = "") -> tuple[int, dict]:
        self.token_errors.append(f"{code}: {description}" if description else code)
        return status, {"error": code, "error_description": description or code}


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.requests.append(self.path)
            parts = urlsplit(self.path)
            # Any prefix: a client configured with a wrong issuer URL gets this issuer's
            # document (as a proxy might serve it), which names the real issuer.
            if parts.path.endswith("/.well-known/openid-configuration"):
                self._json(200, issuer.discovery())
            elif parts.path == "/jwks":
                self._json(200, issuer.jwks())
            elif parts.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, where = issuer.authorize(query)
                if status != 302:
                    self.send_error(status, where)
                elif issuer.consent_page:
                    link = html.escape(where, quote=True)
                    page = f'<!doctype html><a id="approve" href="{link}">Sign in</a>'
                    self._send(200, "text/html", page.encode())
                else:
                    self.send_response(302)
                    self.send_header("Location", where)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            issuer.requests.append(self.path)
            if self.path != "/token":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            self._json(*issuer.redeem(form, self.headers.get("Authorization")))

        def _json(self, status: int, body: dict) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:  # keep the test output clean
            pass

    return Handler


@contextmanager
def serve_issuer(host: str = "127.0.0.1") -> Iterator[Issuer]:
    """The issuer on a free loopback port, named `host` in its URL (a browser test names it
    `localhost`, another site than the page's 127.0.0.1, as a real issuer is)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    issuer = Issuer(f"http://{host}:{server.server_address[1]}", new_key())
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
