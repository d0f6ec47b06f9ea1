"""The registry's credentials go to a token realm only when it is https on the registry's
host or TIMBEL_REGISTRY_TOKEN_REALMS allows it (issue #13, finding 6): the rule on tables,
then against the real `docker-registry` naming a loopback token server that records every
request it receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from werkzeug import Response

from tests.services import oci_registry as service
from tests.services.oci_registry import Registry, token_registry
from tests.services.oci_registry_auth import PASSWORD, USER
from timbel_dagster.resources.errors import SourceAuthError, SourceError
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_client import RegistryClient
from timbel_dagster.resources.registry_http import RegistryHTTP
from timbel_dagster.resources.registry_realm import parse_realm_rules, realm_refusal
from timbel_dagster.settings import get_settings, load_settings

oci_registry_token_plain = service.oci_registry_token_plain
SETTING = "TIMBEL_REGISTRY_TOKEN_REALMS"


# -- the rule -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("registry", "realm", "allowed"),
    [
        # the registry itself, even on plain http: it already receives the credentials
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/token", []),
        # https on the registry's host (Harbor, GHCR), any port, any case
        ("https://harbor.example", "https://harbor.example/service/token", []),
        ("http://registry.local:5000", "https://REGISTRY.local:8443/token", []),
        ("https://ghcr.io", "https://ghcr.io/token", []),
        # allowed by the setting: a host means https on it, a prefix says scheme and path
        ("https://registry-1.docker.io", "https://auth.docker.io/token", ["auth.docker.io"]),
        ("https://reg.gitlab.example", "https://gitlab.example/jwt/auth", ["gitlab.example"]),
        (
            "https://r.example",
            "https://gitlab.example/jwt/auth?x=1",
            ["https://gitlab.example/jwt"],
        ),
        ("http://127.0.0.1:5000", "http://127.0.0.1:6000/token", ["http://127.0.0.1:6000/token"]),
        ("https://r.example", "https://auth.example:8443/t", ["auth.example:8443"]),
        ("https://r.example", "https://auth.example:8443/t", ["auth.example"]),  # any port
    ],
)
def test_realms_that_may_receive_the_credentials(
    registry: str, realm: str, allowed: list[str]
) -> None:
    assert realm_refusal(realm, registry, parse_realm_rules(allowed), True) is None


@pytest.mark.parametrize(
    ("registry", "realm", "allowed", "why", "entry"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:6000/token", [], "plain http",
         "http://127.0.0.1:6000/token"),
        ("https://harbor.example", "http://harbor.example/service/token", [], "plain http",
         "http://harbor.example/service/token"),
        ("https://harbor.example", "https://attacker.example/token", [],
         "host attacker.example is not the registry's", "attacker.example"),
        ("https://registry-1.docker.io", "http://auth.docker.io/token", ["auth.docker.io"],
         "plain http, host auth.docker.io is not the registry's", "http://auth.docker.io/token"),
        # a prefix is compared by host and whole path segments, not as a string
        ("https://r.example", "https://gitlab.example.evil/jwt/auth",
         ["https://gitlab.example"], "host gitlab.example.evil is not the registry's",
         "gitlab.example.evil"),
        ("https://r.example", "https://gitlab.example/jwtx", ["https://gitlab.example/jwt"],
         "host gitlab.example is not the registry's", "gitlab.example"),
        ("https://r.example", "https://auth.example/t", ["auth.example:8443"],
         "host auth.example is not the registry's", "auth.example"),
    ],
)  # fmt: skip
def test_realms_that_must_not_receive_them(
    registry: str, realm: str, allowed: list[str], why: str, entry: str
) -> None:
    assert realm_refusal(realm, registry, parse_realm_rules(allowed), True) == (
        f"refusing to send the registry credentials to token realm {realm} ({why}); if it "
        f"is this registry's token service, add {entry} to {SETTING}"
    )
    # Without credentials nothing secret is sent: any http(s) realm may be asked.
    assert realm_refusal(realm, registry, (), False) is None


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "ftp://auth.example/t", "/token", ""])
def test_a_realm_that_is_not_http_is_never_followed(realm: str) -> None:
    for with_credentials in (True, False):
        assert realm_refusal(realm, "https://r.example", (), with_credentials) == (
            f"token realm {realm!r} is not an http(s) URL; not following it"
        )


@pytest.mark.parametrize(
    "entry", ["ftp://auth.example", "auth.example/token", "https://u:p@auth.example", "https://"]
)
def test_bad_setting_entries_are_refused_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match=f"^{SETTING}: '.*' is neither a host"):
        load_settings(timbel_registry_token_realms=f"auth.docker.io, {entry}")


def test_the_setting_reaches_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SETTING, "auth.docker.io, https://gitlab.example/jwt/auth")
    get_settings.cache_clear()
    try:
        http = RegistryResource(url="https://registry-1.docker.io").client().http
        assert http.realm_rules == parse_realm_rules(
            ["auth.docker.io", "https://gitlab.example/jwt/auth"]
        )
        own = RegistryResource(url="https://r.example", token_realms=[]).client().http
        assert own.realm_rules == ()
    finally:
        get_settings.cache_clear()


# -- against the real registry --------------------------------------------------------------
def test_credentials_never_reach_a_plain_http_token_server(
    oci_registry_token_plain: Registry,
) -> None:
    """The attack: the registry (or whoever answers for it) names a plain-http realm on
    another port; before, the client sent `Authorization: Basic` (alice's password) there."""
    registry, issuer = oci_registry_token_plain, oci_registry_token_plain.issuer
    assert issuer is not None and registry.realm is not None
    http = RegistryHTTP(registry.url, USER, PASSWORD)
    with pytest.raises(SourceError) as raised:
        RegistryClient(http).catalog()
    assert str(raised.value) == (
        f"registry {registry.url}: refusing to send the registry credentials to token realm "
        f"{registry.realm} (plain http); if it is this registry's token service, add "
        f"{registry.realm} to {SETTING}"
    )
    assert issuer.requests == []  # nothing arrived, so no Authorization header either
    assert http.requests_made == 1  # the registry's 401 only


def test_an_allowed_plain_http_token_server_gets_them(oci_registry_token_plain: Registry) -> None:
    registry, issuer = oci_registry_token_plain, oci_registry_token_plain.issuer
    assert issuer is not None and registry.realm is not None
    registry.push("team/api", "1.0")
    http = RegistryHTTP(registry.url, USER, PASSWORD, token_realms=[registry.realm])
    assert RegistryClient(http).tags("team/api") == ["1.0"]
    assert [r["user"] for r in issuer.requests] == [USER]


def test_anonymous_token_requests_go_anywhere_without_a_secret(
    oci_registry_token_plain: Registry,
) -> None:
    issuer = oci_registry_token_plain.issuer
    assert issuer is not None
    with pytest.raises(SourceAuthError, match="the token service refused anonymous access"):
        RegistryClient(RegistryHTTP(oci_registry_token_plain.url)).catalog()
    assert [r["authorization"] for r in issuer.requests] == [None]


def test_credentials_never_reach_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https realm on another host name (`localhost` for the registry's `127.0.0.1`)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "token-tls" / "tls.crt"))
    rename = lambda url: url.replace("127.0.0.1", "localhost")  # noqa: E731
    with token_registry(tmp_path, realm=rename) as registry:
        assert registry.issuer is not None
        with pytest.raises(SourceError, match=r"\(host localhost is not the registry's\); if"):
            RegistryClient(RegistryHTTP(registry.url, USER, PASSWORD)).catalog()
        assert registry.issuer.requests == []


def test_a_file_realm_is_not_followed(httpserver: Any) -> None:
    challenge = 'Bearer realm="file:///etc/passwd",service="x"'
    httpserver.expect_request("/v2/_catalog").respond_with_response(
        Response("{}", 401, headers={"WWW-Authenticate": challenge})
    )
    url = httpserver.url_for("").rstrip("/")
    with pytest.raises(SourceError) as raised:
        RegistryClient(RegistryHTTP(url)).catalog()
    assert str(raised.value) == (
        f"registry {url}: token realm 'file:///etc/passwd' is not an http(s) URL; not following it"
    )
