"""OIDC bearer tokens: a JWT from the configured issuer, checked against its JWKS, stands for
a user of the users table.

The checks: the signature with a key of the issuer's JWKS (found by the token's `kid`),
an asymmetric algorithm only and the one that key declares (so `none` and HS256 signed with
the public key, the algorithm-confusion attack, are refused), `iss`, `aud`, `exp` (required),
`nbf` and `iat`, with 30 s of leeway for clock skew.

Who: the user whose `oidc_subject` is the token's `sub`; else the user named by the user
claim (`preferred_username` by default). An unknown or disabled user is refused: the
issuer proves who someone is, the users table says whether they may use Timbel. A service
account (`users.kind = service`) is refused too, as a bearer JWT and at the approvals page's
sign-in alike: it acts only through its own API tokens, and an identity at the issuer that
happens to carry its name must not become it.

The role: the users table's role, unless a role claim is configured; then the claim's role
is used but never above the table's (a claim can lower a role, e.g. an admin signing in
through a read-only client, but a forged or misconfigured group cannot make a viewer an
admin). A configured claim that names no known role refuses the token.

The approvals page's sign-in (`identity/oidc_login.py`) uses the same verifier: the
discovery document's endpoints, and ID tokens checked like bearer JWTs but with the page's
client id as `aud` (and `azp` when several audiences), `iat` required, and the `nonce` the
sign-in sent.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from sqlalchemy import select

from timbel_dagster.identity.principal import Principal, load_principal
from timbel_dagster.warehouse.people.users import SERVICE, DisabledUserError, UserRefusedError
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.settings.model import Settings

# Lowest first: a claim may choose a role at or below the table's (a test checks that every
# role of USER_ROLES is here).
ROLE_ORDER = ("viewer", "developer", "team_lead", "operations", "admin")
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 10.0
# How long fetched JWKS keys are kept; an unknown kid refetches at most once (PyJWKClient).
JWKS_CACHE_SECONDS = 300


class OidcRefusedError(LookupError):
    """A JWT that does not let anyone in; `reason` is one word (invalid, unknown_user,
    user_disabled, service_account, no_role)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None
    user_claim: str
    role_claim: str | None
    role_map: dict[str, str]
    # The approvals page's sign-in; client_id None: not offered.
    client_id: str | None = None
    client_secret: str | None = None
    scopes: str = "openid profile email"
    public_url: str | None = None

    @property
    def login_enabled(self) -> bool:
        return self.client_id is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The configuration, or None when OIDC is off (no issuer).

        Raises:
            ValueError: an issuer without an audience, a role map entry naming no role, or
                a page client id without an issuer, a public URL or the openid scope.
        """
        client_id = settings.timbel_oidc_client_id
        if not settings.timbel_oidc_issuer:
            if client_id:
                raise ValueError("TIMBEL_OIDC_CLIENT_ID needs TIMBEL_OIDC_ISSUER")
            return None
        if not settings.timbel_oidc_audience:
            raise ValueError("TIMBEL_OIDC_AUDIENCE is needed with TIMBEL_OIDC_ISSUER")
        public_url = (
            str(settings.timbel_public_url).rstrip("/") if settings.timbel_public_url else None
        )
        if client_id:
            # The redirect URI must be the one registered at the issuer, character for
            # character: it is built from this setting, never from the request's Host header.
            if public_url is None:
                raise ValueError(
                    "TIMBEL_OIDC_CLIENT_ID needs TIMBEL_PUBLIC_URL: the page's redirect URI "
                    "is TIMBEL_PUBLIC_URL/login/oidc/callback"
                )
            if "openid" not in settings.timbel_oidc_scopes.split():
                raise ValueError(
                    f"TIMBEL_OIDC_SCOPES: {settings.timbel_oidc_scopes!r} lacks openid, "
                    "without which the issuer sends no ID token"
                )
        secret = settings.timbel_oidc_client_secret
        secret_value = secret.get_secret_value() if secret is not None else ""
        return cls(
            issuer=settings.timbel_oidc_issuer.rstrip("/"),
            audience=settings.timbel_oidc_audience,
            jwks_url=settings.timbel_oidc_jwks_url,
            user_claim=settings.timbel_oidc_user_claim,
            role_claim=settings.timbel_oidc_role_claim,
            role_map=parse_role_map(settings.timbel_oidc_role_map),
            client_id=client_id or None,
            client_secret=secret_value or None,
            scopes=settings.timbel_oidc_scopes,
            public_url=public_url,
        )


def parse_role_map(entries: list[str]) -> dict[str, str]:
    """`group=role` entries as a dict. Raises ValueError naming a bad entry."""
    mapping = {}
    for entry in entries:
        value, _, role = entry.rpartition("=")
        if not value or role.strip() not in ROLE_ORDER:
            raise ValueError(
                f"TIMBEL_OIDC_ROLE_MAP: {entry!r} is not `claim value=role` with a role of "
                f"{', '.join(ROLE_ORDER)}"
            )
        mapping[value.strip()] = role.strip()
    return mapping


class OidcVerifier:
    """Checks JWTs of one issuer; the JWKS (and the discovery document) are fetched on first
    use and cached, so start-up never waits on the issuer."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._jwks: jwt.PyJWKClient | None = None
        self._discovery: dict[str, Any] | None = None
        # Re-entrant: the JWKS client is made under it and reads the discovery document.
        self._lock = threading.RLock()

    def _jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = self.config.jwks_url or self.discovery()["jwks_uri"]
                self._jwks = jwt.PyJWKClient(
                    url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=10
                )
            return self._jwks

    def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document, fetched once (a failed fetch is retried next
        time). Raises OidcRefusedError("invalid", why): unreachable, not JSON, another
        issuer's, or without jwks_uri."""
        with self._lock:
            if self._discovery is None:
                self._discovery = self._fetch_discovery()
            return self._discovery

    def _fetch_discovery(self) -> dict[str, Any]:
        url = f"{self.config.issuer}/.well-known/openid-configuration"
        try:
            response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise OidcRefusedError("invalid", f"OIDC discovery at {url} failed: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise OidcRefusedError("invalid", f"{url} is not a discovery document (no jwks_uri)")
        if str(document.get("issuer", "")).rstrip("/") != self.config.issuer:
            raise OidcRefusedError("invalid", f"{url} is the discovery document of another issuer")
        return document

    def endpoint(self, name: str) -> str:
        """The discovery document's `name` (authorization_endpoint, token_endpoint).
        Raises OidcRefusedError("invalid", why) when the issuer publishes none."""
        value = self.discovery().get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise OidcRefusedError(
                "invalid", f"the issuer's discovery document has no usable {name}: {value!r}"
            )
        return value

    def claims(
        self, token: str, *, audience: str | None = None, require: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The verified claims of `token` for `audience` (default: the API's), with the
        `require`d claims beside exp, iss, aud and sub. Raises OidcRefusedError("invalid")."""
        try:
            key = self._jwks_client().get_signing_key_from_jwt(token)
            algorithm = key.algorithm_name
            if algorithm not in ASYMMETRIC:
                raise OidcRefusedError("invalid", f"the JWKS key uses {algorithm}, not allowed")
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience or self.config.audience,
                issuer=self.config.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub", *require]},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
            raise OidcRefusedError("invalid", f"the OIDC token was refused: {error}") from None

    def id_token_claims(self, token: str, nonce: str) -> dict[str, Any]:
        """The verified claims of an ID token the page's sign-in received (OIDC Core
        3.1.3.7): `aud` is the page's client id (and `azp` too when there are several
        audiences), `iat` is required and `nonce` is the one the sign-in sent, which ties
        the token to this browser's sign-in (a token from another sign-in is refused).

        Raises:
            OidcRefusedError: "invalid" (signature, iss, aud, azp, exp) or "nonce".
        """
        client_id = self.config.client_id
        if client_id is None:
            raise OidcRefusedError("invalid", "the page's sign-in is off (no client id)")
        claims = self.claims(token, audience=client_id, require=("iat",))
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != client_id:
            raise OidcRefusedError(
                "invalid", f"the ID token's azp is {azp!r}, not this client ({client_id!r})"
            )
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode(), nonce.encode()
        ):
            raise OidcRefusedError(
                "nonce", "the ID token's nonce is not the one this sign-in sent: sign in again"
            )
        return claims

    def principal(self, engine: Engine, token: str) -> Principal:
        """The principal `token` stands for (see the module docstring).

        Raises:
            OidcRefusedError: the token is invalid, its user unknown or disabled, or its role
                claim names no role.
        """
        return self.principal_of(engine, self.claims(token))

    def principal_of(
        self, engine: Engine, claims: dict[str, Any], *, via: str = "oidc"
    ) -> Principal:
        """The principal verified `claims` stand for (see `principal`)."""
        found = self.user_of(engine, claims, via=via)
        return replace(found, role=self._role(claims, found.role))

    def user_of(self, engine: Engine, claims: dict[str, Any], *, via: str = "oidc") -> Principal:
        """The user `claims` name, with the users table's role (no role claim applied): the
        one whose oidc_subject is `sub`, else the one the user claim names.

        Raises:
            OidcRefusedError: unknown_user, user_disabled, service_account.
        """
        with engine.connect() as connection:
            name = connection.execute(
                select(User.name).where(User.oidc_subject == str(claims["sub"]))
            ).scalar_one_or_none() or claims.get(self.config.user_claim)
            if not isinstance(name, str) or not name:
                raise OidcRefusedError(
                    "unknown_user",
                    f"no user has oidc_subject {claims['sub']!r} and the token has no "
                    f"{self.config.user_claim} claim",
                )
            try:
                found = load_principal(connection, name, via=via)
            except UserRefusedError as error:
                reason = "user_disabled" if isinstance(error, DisabledUserError) else "unknown_user"
                raise OidcRefusedError(reason, f"OIDC user {name!r}: {error}") from None
        if found.kind == SERVICE:
            raise OidcRefusedError(
                "service_account",
                f"OIDC user {name!r} is a service account, which cannot sign in: it acts only "
                f"through its API tokens (`timbel token create --user {name}`)",
            )
        return found

    def _role(self, claims: dict[str, Any], table_role: str) -> str:
        if self.config.role_claim is None:
            return table_role
        value = claims.get(self.config.role_claim)
        values = value if isinstance(value, list) else [value]
        named = [
            self.config.role_map.get(str(v), str(v)) for v in values if v is not None
        ]  # fmt: skip
        known = [r for r in named if r in ROLE_ORDER]
        if not known:
            raise OidcRefusedError(
                "no_role", f"the token's {self.config.role_claim} claim names no Timbel role"
            )
        claimed = max(known, key=ROLE_ORDER.index)  # several groups: the highest of them
        return min(claimed, table_role, key=ROLE_ORDER.index)
