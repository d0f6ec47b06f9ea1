"""Which token services may receive the registry's credentials.

A registry that wants tokens names its token service in `WWW-Authenticate: Bearer realm=`.
That header comes from the registry (or from whoever answers in its place), so following it
blindly would send `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` to any host, over plain HTTP. The
credentials go to a realm only when it is:
- the registry itself (same scheme, host and port: it already receives them);
- https on the registry's host, any port (Harbor, GHCR: `ghcr.io/token`);
- allowed by TIMBEL_REGISTRY_TOKEN_REALMS: a host (`auth.docker.io`, `host:port`), meaning
  https on that host, or a URL prefix (`https://gitlab.example/jwt/auth`), compared by scheme,
  host, port and whole path segments; plain http only when a prefix says `http://`.
An anonymous token request sends no secret and may go to any http(s) realm; a realm with
another scheme (`file:`, `ftp:`) is never followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

# The setting is parsed into rules with the settings (the bottom layer), which check it at
# start-up; the rules are applied here, and named here too for the registry client.
from timbel_dagster.settings import (
    HTTP_DEFAULT_PORTS,
    RealmRule,
    parse_realm_rules,
    url_port,
)

__all__ = ["SETTING", "RealmRule", "parse_realm_rules", "realm_refusal"]

SETTING = "TIMBEL_REGISTRY_TOKEN_REALMS"


def realm_refusal(
    realm: str, registry_url: str, rules: Iterable[RealmRule], with_credentials: bool
) -> str | None:
    """Why the token request to `realm` must not be sent, or None when it may be.

    Args:
        realm: the `realm` of the registry's Bearer challenge.
        registry_url: the registry's base URL.
        rules: TIMBEL_REGISTRY_TOKEN_REALMS, parsed.
        with_credentials: the request would carry the registry's basic credentials.
    """
    url = urlsplit(realm)
    if url.scheme not in HTTP_DEFAULT_PORTS or not url.hostname:
        return f"token realm {realm!r} is not an http(s) URL; not following it"
    if not with_credentials:
        return None
    registry = urlsplit(registry_url)
    same_host = url.hostname == registry.hostname
    if same_host and url.scheme == registry.scheme and url_port(url) == url_port(registry):
        return None  # the registry itself, which already receives the credentials
    if same_host and url.scheme == "https":
        return None
    if any(rule.allows(url) for rule in rules):
        return None
    # Here the realm is plain http, or on another host, or both.
    why = [] if url.scheme == "https" else ["plain http"]
    if not same_host:
        why.append(f"host {url.hostname} is not the registry's")
    where = url.netloc.rpartition("@")[2]
    entry = f"{url.scheme}://{where}{url.path}" if url.scheme == "http" else where
    return (
        f"refusing to send the registry credentials to token realm {realm} "
        f"({', '.join(why)}); if it is this registry's token service, add {entry} to {SETTING}"
    )
