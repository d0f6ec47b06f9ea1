"""HTTP access to an OCI distribution (v2) registry: retries, authentication, typed errors.

Authentication follows what registries ask for:
- Basic: Harbor robot accounts, Nexus, `docker-registry` with htpasswd. Sent with every
  request once credentials are configured.
- Bearer, per the Docker token spec (distribution/docs/spec/auth/token.md): a 401 names a
  `realm`, `service` and `scope`; a token for that scope is fetched from the realm (with the
  basic credentials, if any), cached per scope until it expires, and the request retried.
  Once a registry has asked for tokens, tokens for new scopes are fetched before the first
  request, saving a refused round trip per repository.
- A fixed bearer `token`, for registries that hand out long-lived tokens.
Credentials are never sent to another host: redirects (blobs on object storage) are
followed without them, and a token realm gets them only when `registry_realm` allows it
(https on the registry's host, or TIMBEL_REGISTRY_TOKEN_REALMS).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.payload import parse_json
from timbel_dagster.resources.registry_realm import SETTING, parse_realm_rules, realm_refusal

SYSTEM = "registry"
_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_REDIRECTS = {301, 302, 303, 307, 308}
DEFAULT_TOKEN_SECONDS = 60  # the token spec's default when `expires_in` is absent


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: basic or bearer
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header, e.g. `Bearer realm="...",...`."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def _registry_errors(response: requests.Response) -> str:
    """`CODE: message` of the registry's JSON error body, or '' when there is none."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    return "; ".join(
        f"{e.get('code', '?')}: {e.get('message', '')}".strip()
        for e in errors
        if isinstance(e, dict)
    )


class RegistryHTTP:
    """One registry. `requests_made` counts every request sent, token requests included."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify_tls: bool = True,
        token_realms: Sequence[str] = (),
        timeout: float = 30.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.host = urlsplit(self.url).netloc
        self.username, self._password, self._static_token = username, password, token
        try:
            self.realm_rules = parse_realm_rules(token_realms)
        except ValueError as error:
            raise ValueError(f"token realms ({SETTING}): {error}") from None
        self.timeout, self.retries, self.backoff_seconds = timeout, retries, backoff_seconds
        self._sleep, self._clock = sleep, clock
        self.session = requests.Session()
        self.session.verify = verify_tls
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, valid until)
        self._bearer: Challenge | None = None  # the registry's token service, once seen
        self.requests_made = 0
        self.tokens_fetched = 0

    # -- sending ----------------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        self.requests_made += 1
        try:
            return self.session.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.exceptions.SSLError as error:
            raise SourceError(
                SYSTEM,
                url,
                f"TLS verification failed ({error}); fix the certificate or set verify_tls false",
            ) from None
        except requests.Timeout:
            raise TransientSourceError(SYSTEM, url, f"timed out after {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise TransientSourceError(SYSTEM, url, f"cannot connect to {self.url}") from None

    def _retrying(self, send: Callable[[], requests.Response], obj: str) -> requests.Response:
        """`send`, retried with exponential backoff on 5xx, 429 and dropped connections."""
        attempt = 0
        while True:
            try:
                response = send()
            except TransientSourceError:
                if attempt >= self.retries:
                    raise
                response = None
            if response is not None and not (
                response.status_code >= 500 or response.status_code == 429
            ):
                return response
            if attempt >= self.retries:
                assert response is not None
                raise TransientSourceError(
                    SYSTEM, obj, f"server error {response.status_code} after {attempt + 1} tries"
                )
            wait = self.backoff_seconds * 2**attempt
            if response is not None and (response.headers.get("Retry-After") or "").isdigit():
                wait = min(60.0, float(response.headers["Retry-After"]))
            self._sleep(wait)
            attempt += 1

    def _auth_header(self, scope: str) -> dict[str, str]:
        cached = self._tokens.get(scope)
        if cached and cached[1] > self._clock():
            return {"Authorization": f"Bearer {cached[0]}"}
        if self._bearer is not None:
            return {"Authorization": f"Bearer {self._fetch_token(self._bearer, scope)}"}
        if self._static_token:
            return {"Authorization": f"Bearer {self._static_token}"}
        if self.username is not None:
            pair = f"{self.username}:{self._password or ''}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        return {}

    def request(
        self,
        method: str,
        path: str,
        obj: str,
        scope: str,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Send one request to the registry (`path` relative to it, or an absolute URL on it)
        with the credentials `scope` needs; redirects elsewhere are followed without them.

        Raises:
            SourceAuthError: credentials missing or refused (401/403).
            SourceNotFoundError: 404, with the registry's error code.
            TransientSourceError: 5xx/429/unreachable after the retries.
            SourceError: any other refusal.
        """
        url = urljoin(self.url + "/", path)
        if urlsplit(url).netloc != self.host:
            raise SourceDataError(SYSTEM, obj, f"refusing to send credentials to {url}")
        refreshed = False
        while True:
            sent = dict(headers or {}) | self._auth_header(scope)
            response = self._retrying(
                lambda sent=sent: self._send(
                    method, url, sent, params=params, allow_redirects=False
                ),
                obj,
            )
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if (
                response.status_code == 401
                and not refreshed
                and challenge is not None
                and challenge.scheme == "bearer"
                and "realm" in challenge.params
            ):
                # First contact, or the cached token expired early: fetch one and retry once.
                # Remembered without its scope and error: later scopes fetch their own token.
                self._bearer = Challenge(
                    "bearer",
                    {k: v for k, v in challenge.params.items() if k in ("realm", "service")},
                )
                self._tokens.pop(scope, None)
                self._fetch_token(challenge, scope)
                refreshed = True
                continue
            break
        if response.status_code in _REDIRECTS and response.headers.get("Location"):
            response = self._follow(method, urljoin(url, response.headers["Location"]), obj, scope)
        self.raise_for_status(response, obj, challenge)
        return response

    def _follow(self, method: str, url: str, obj: str, scope: str) -> requests.Response:
        """Follow a redirect (blob storage: S3, a CDN): the registry's credentials go only to
        the registry itself, never to the storage host, whose signed URL is the credential."""
        for _ in range(5):
            headers = self._auth_header(scope) if urlsplit(url).netloc == self.host else {}
            response = self._retrying(
                lambda url=url, headers=headers: self._send(
                    method, url, headers, allow_redirects=False
                ),
                obj,
            )
            if response.status_code not in _REDIRECTS:
                return response
            url = urljoin(url, response.headers.get("Location", ""))
        raise SourceError(SYSTEM, obj, f"too many redirects (last to {url})")

    # -- tokens -----------------------------------------------------------------------------
    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        """A bearer token for `scope` from the challenge's realm, cached until it expires."""
        realm = challenge.params["realm"]
        params = {"scope": challenge.params.get("scope") or scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        obj = f"{realm} (token for {params['scope']})"
        auth = (self.username, self._password or "") if self.username is not None else None
        refusal = realm_refusal(realm, self.url, self.realm_rules, auth is not None)
        if refusal:  # checked before anything is sent: the realm comes from the server
            raise SourceError(SYSTEM, self.url, refusal)
        response = self._retrying(lambda: self._send_token(realm, params, auth), obj)
        if response.status_code in (401, 403):
            who = f"user {self.username}" if self.username else "anonymous access"
            raise SourceAuthError(
                SYSTEM,
                obj,
                f"the token service refused {who} ({response.status_code}); "
                "check REGISTRY_USERNAME and REGISTRY_PASSWORD",
            )
        if response.status_code != 200:
            raise SourceError(SYSTEM, obj, f"token service answered {response.status_code}")
        body = parse_json(SYSTEM, obj, response.content, response.headers.get("Content-Type", ""))
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceDataError(SYSTEM, obj, "no token in the answer", field="token")
        lifetime = body.get("expires_in") or DEFAULT_TOKEN_SECONDS
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            raise SourceDataError(SYSTEM, obj, f"not a number: {lifetime!r}", field="expires_in")
        self.tokens_fetched += 1
        # Renew a little early, so a token never expires between the check and its use.
        self._tokens[scope] = (token, self._clock() + max(1.0, float(lifetime) * 0.9 - 5))
        return token

    def _send_token(
        self, realm: str, params: dict[str, str], auth: tuple[str, str] | None
    ) -> requests.Response:
        self.requests_made += 1
        try:
            # A redirect to another host, port or scheme loses `auth` (requests strips it).
            return self.session.get(realm, params=params, auth=auth, timeout=self.timeout)
        except requests.exceptions.SSLError as error:
            raise SourceError(SYSTEM, realm, f"TLS verification failed ({error})") from None
        except (requests.Timeout, requests.ConnectionError):
            raise TransientSourceError(SYSTEM, realm, "token service unreachable") from None

    # -- errors -----------------------------------------------------------------------------
    def raise_for_status(
        self, response: requests.Response, obj: str, challenge: Challenge | None = None
    ) -> None:
        status = response.status_code
        if status < 400:
            return
        codes = _registry_errors(response)
        detail = f"{status} {codes}" if codes else str(status)
        if status == 404:
            raise SourceNotFoundError(SYSTEM, obj, f"not found ({detail})")
        if status in (401, 403):
            if challenge and challenge.params.get("error") == "insufficient_scope":
                hint = "the account lacks the permission"
            elif self.username is None and not self._static_token:
                hint = "the registry needs credentials: set REGISTRY_USERNAME and REGISTRY_PASSWORD"
            else:
                hint = "credentials refused; check REGISTRY_USERNAME and REGISTRY_PASSWORD"
            raise SourceAuthError(SYSTEM, obj, f"access refused ({detail}): {hint}")
        raise SourceError(SYSTEM, obj, f"request refused ({detail})")
