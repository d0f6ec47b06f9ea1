"""The OCI registry client: parsing on tables, then against a real `docker-registry` that is
open, on HTTPS, behind htpasswd basic auth, redirecting blobs to another server, or behind
token auth (real registry, loopback token server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.exceptions import InsecureRequestWarning

from tests.services import oci_registry as service
from tests.services.oci_push import CREATED, OCI_INDEX, OCI_MANIFEST, put_manifest, upload_blob
from tests.services.oci_registry import Registry, free_port
from tests.services.oci_registry_auth import PASSWORD, USER
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_client import RegistryClient
from timbel_dagster.resources.registry_http import RegistryHTTP, parse_challenge
from timbel_dagster.resources.registry_parse import (
    check_reference,
    check_repository,
    parse_created,
    parse_manifest,
    pick_platform,
)
from timbel_dagster.resources.registry_records import Descriptor, Platform

oci_registry = service.oci_registry
oci_registry_basic = service.oci_registry_basic
oci_registry_tls = service.oci_registry_tls
oci_registry_redirecting = service.oci_registry_redirecting
oci_registry_token = service.oci_registry_token


def client(registry: Registry, page_size: int = 100, **kwargs: Any) -> RegistryClient:
    patterns = kwargs.pop("repositories", ())
    return RegistryClient(RegistryHTTP(registry.url, **kwargs), page_size, patterns)


# -- pure functions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:team/app:pull,push"',
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:team/app:pull,push",
            },
        ),
        ('Basic realm="Harbor"', "basic", {"realm": "Harbor"}),
        (
            'Bearer realm="r",error="insufficient_scope",scope="registry:catalog:*"',
            "bearer",
            {"realm": "r", "error": "insufficient_scope", "scope": "registry:catalog:*"},
        ),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.scheme, challenge.params) == (scheme, params)


@pytest.mark.parametrize("name", ["../etc", "Team/App", "team//app", "", "a/b/"])
def test_bad_repository_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a repository name"):
        check_repository(name)


@pytest.mark.parametrize("reference", ["1.0", "latest", "sha256:" + "a" * 64, "v1_rc-2"])
def test_references(reference: str) -> None:
    assert check_reference(reference) == reference


@pytest.mark.parametrize("reference", ["../x", ".hidden", "a" * 129, "tag with space"])
def test_bad_references_are_refused(reference: str) -> None:
    with pytest.raises(ValueError, match="neither a tag nor a digest"):
        check_reference(reference)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01T09:30:00.123456789Z", dt.datetime(2026, 11, 1, 9, 30, 0, 123456, dt.UTC)),
        ("2026-11-01T18:30:00+09:00", dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: unknown
        (None, None),
    ],
)
def test_parse_created(value: str | None, expected: dt.datetime | None) -> None:
    assert parse_created(value, "obj") == expected


@pytest.mark.parametrize("value", ["yesterday", 17])
def test_parse_created_refuses_non_times(value: object) -> None:
    with pytest.raises(SourceDataError, match="field 'created'"):
        parse_created(value, "obj")


def _entry(os_name: str, architecture: str, digest: str) -> Descriptor:
    return Descriptor(OCI_MANIFEST, digest, 1, Platform(os_name, architecture))


@pytest.mark.parametrize(
    ("entries", "picked"),
    [
        ([_entry("linux", "arm64", "a"), _entry("linux", "amd64", "b")], "b"),
        ([_entry("unknown", "unknown", "att"), _entry("linux", "arm64", "a")], "a"),
        ([Descriptor(OCI_MANIFEST, "only", 1)], "only"),
    ],
)
def test_pick_platform(entries: list[Descriptor], picked: str) -> None:
    chosen = pick_platform(entries)
    assert chosen is not None and chosen.digest == picked


def test_manifest_whose_bytes_do_not_match_the_header_is_refused() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(SourceDataError, match="manifest bytes hash to sha256:"):
        parse_manifest("team/app", "1.0", body, OCI_INDEX, "sha256:" + "0" * 64, "obj")
    parsed = parse_manifest("team/app", "1.0", body, OCI_INDEX, None, "obj")
    assert parsed.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert parsed.is_index and parsed.size is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><title>Sign in</title></html>", "expected JSON, got an HTML page"),
        (b'{"schemaVersion": 1, "name": "x"}', "schema 1 manifests are not supported"),
        (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "field 'config'"),
    ],
)
def test_manifests_that_are_not_manifests_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(SourceDataError, match=message):
        parse_manifest("team/app", "1.0", body, "application/json", None, "obj")


# -- an open registry -----------------------------------------------------------------------
def test_catalog_follows_link_pages(oci_registry: Registry) -> None:
    names = [f"team/app{i}" for i in range(5)]
    for name in names:
        oci_registry.push(name, "1.0")
    registry = client(oci_registry, page_size=2)
    assert registry.catalog() == names
    assert registry.http.requests_made == 3  # n=2: 2 + 2 + 1


def test_tags_and_manifests(oci_registry: Registry) -> None:
    tags = [f"v{i}" for i in range(7)]
    digests = {tag: oci_registry.push("team/api", tag) for tag in tags}
    registry = client(oci_registry, page_size=3)
    # docker-registry 2.8 ignores `n` on tags/list (pagination came in 3.0): all in one page.
    assert sorted(registry.tags("team/api")) == tags
    manifest = registry.manifest("team/api", "v3")
    assert manifest.digest == digests["v3"]
    assert manifest.media_type == OCI_MANIFEST and not manifest.is_index
    assert manifest.config_digest is not None and len(manifest.layers) == 1
    assert manifest.size == manifest.config.size + manifest.layers[0].size  # type: ignore[union-attr]
    by_digest = registry.manifest("team/api", digests["v3"])
    assert by_digest == dataclasses.replace(manifest, reference=digests["v3"])
    before = registry.http.requests_made
    assert registry.digest("team/api", "v5") == digests["v5"]
    assert registry.http.requests_made == before + 1  # one HEAD
    assert registry.created("team/api", "v0") == CREATED


def test_image_index_resolves_to_its_amd64_image(oci_registry: Registry) -> None:
    digest = oci_registry.push_index("team/multi", "2.0", created=CREATED)
    registry = client(oci_registry)
    index = registry.manifest("team/multi", "2.0")
    assert index.digest == digest and index.is_index and index.media_type == OCI_INDEX
    assert index.platforms == ("linux/arm64", "linux/amd64")
    amd64 = registry.manifest("team/multi", index.manifests[1].digest)
    [image] = registry.images()
    assert (image.tag, image.digest, image.media_type) == ("2.0", digest, OCI_INDEX)
    assert image.created == CREATED and image.size == amd64.size


def test_images_with_and_without_details(oci_registry: Registry) -> None:
    oci_registry.push("team/api", "1.0")
    oci_registry.push("team/api", "1.1", created=None)
    oci_registry.push("other/tool", "3")
    registry = client(oci_registry, repositories=["team/*"])
    found = list(registry.images())
    assert [(i.repository, i.tag) for i in found] == [("team/api", "1.0"), ("team/api", "1.1")]
    assert [i.digest for i in found] == [
        oci_registry.pushed["team/api:1.0"],
        oci_registry.pushed["team/api:1.1"],
    ]
    assert [i.created for i in found] == [CREATED, None]
    assert all(i.registry == oci_registry.host and i.size for i in found)
    cheap = client(oci_registry, repositories=["team/*"])
    light = list(cheap.images(details=False))
    assert [(i.digest, i.created, i.size) for i in light] == [(i.digest, None, None) for i in found]
    assert cheap.http.requests_made == 1 + 1 + 2  # catalog, tag list, a HEAD per tag


def test_literal_repositories_skip_the_catalog(oci_registry: Registry) -> None:
    oci_registry.push("team/api", "1.0")
    registry = client(oci_registry, repositories=["team/api"])
    assert [i.tag for i in registry.images(details=False)] == ["1.0"]
    assert registry.http.requests_made == 2  # tag list and one HEAD, no catalog


def test_unknown_repository_and_tag_are_named(oci_registry: Registry) -> None:
    oci_registry.push("team/api", "1.0")
    registry = client(oci_registry)
    with pytest.raises(SourceNotFoundError) as error:
        registry.tags("team/nope")
    message = str(error.value)
    assert oci_registry.url in message and "team/nope" in message
    assert "404 NAME_UNKNOWN" in message
    with pytest.raises(SourceNotFoundError, match=r"team/api:2\.0: not found \(404 MANIFEST_"):
        registry.manifest("team/api", "2.0")
    with pytest.raises(SourceNotFoundError, match="team/gone"):
        list(client(oci_registry, repositories=["team/gone"]).images())


def test_config_blob_that_is_not_json_is_a_data_error(oci_registry: Registry) -> None:
    url, repo = oci_registry.url, "team/broken"
    config_digest, config_size = upload_blob(url, repo, b"\x1f\x8b not json", None)
    layer_digest, layer_size = upload_blob(url, repo, b"layer", None)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "x", "digest": layer_digest, "size": layer_size}],
    }
    put_manifest(url, repo, "1", manifest, None)
    with pytest.raises(SourceDataError, match=f"team/broken@{config_digest}: malformed JSON"):
        client(oci_registry).created(repo, "1")


def test_unreachable_registry_is_retried_then_transient() -> None:
    waits: list[float] = []
    http = RegistryHTTP(f"http://127.0.0.1:{free_port()}", timeout=2, sleep=waits.append)
    with pytest.raises(TransientSourceError, match=r"cannot connect to http://127\.0\.0\.1"):
        RegistryClient(http).catalog()
    assert waits == [0.5, 1.0, 2.0] and http.requests_made == 4


def test_tls_is_verified_unless_turned_off(
    oci_registry_tls: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "tls.crt"))  # for the push only
    oci_registry_tls.push("team/api", "1.0")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    strict = client(oci_registry_tls)
    with pytest.raises(SourceError, match="TLS verification failed") as error:
        strict.catalog()
    assert not isinstance(error.value, TransientSourceError) and strict.http.requests_made == 1
    with pytest.warns(InsecureRequestWarning):
        assert client(oci_registry_tls, verify_tls=False).catalog() == ["team/api"]


# -- basic auth -----------------------------------------------------------------------------
def test_basic_auth(oci_registry_basic: Registry) -> None:
    oci_registry_basic.push("team/api", "1.0")
    registry = client(oci_registry_basic, username=USER, password=PASSWORD)
    assert [i.tag for i in registry.images()] == ["1.0"]
    with pytest.raises(
        SourceAuthError, match=r"access refused \(401 UNAUTHORIZED.*credentials refused"
    ):
        client(oci_registry_basic, username=USER, password="wrong").catalog()
    with pytest.raises(SourceAuthError, match="needs credentials"):
        client(oci_registry_basic).tags("team/api")


def test_blob_redirects_are_followed_without_credentials(
    oci_registry_redirecting: Registry,
) -> None:
    oci_registry_redirecting.push("team/api", "1.0")
    registry = client(oci_registry_redirecting, username=USER, password=PASSWORD)
    assert registry.created("team/api", "1.0") == CREATED
    [blob_get] = oci_registry_redirecting.blob_requests  # the config blob, from the file server
    assert "Authorization" not in blob_get


# -- token auth -----------------------------------------------------------------------------
def test_bearer_tokens_are_fetched_per_scope_and_cached(oci_registry_token: Registry) -> None:
    issuer = oci_registry_token.issuer
    assert issuer is not None
    oci_registry_token.push("team/api", "1.0")
    oci_registry_token.push("team/web", "1.0", created=CREATED + dt.timedelta(days=1))
    issuer.requests.clear()
    registry = client(oci_registry_token, username=USER, password=PASSWORD)
    assert [(i.repository, i.tag) for i in registry.images()] == [
        ("team/api", "1.0"),
        ("team/web", "1.0"),
    ]
    assert [r["scopes"] for r in issuer.requests] == [
        ["registry:catalog:*"],
        ["repository:team/api:pull"],
        ["repository:team/web:pull"],
    ]
    assert {r["user"] for r in issuer.requests} == {USER}
    # Only the first request was refused: later scopes fetch their token beforehand.
    registry_requests = registry.http.requests_made - len(issuer.requests)
    # The catalog's 401 and retry, then per repository: tag list, manifest, config blob.
    assert registry_requests == 2 + 2 * 3
    list(registry.images(details=False))
    assert len(issuer.requests) == 3  # cached tokens reused


def test_expired_or_revoked_token_is_fetched_again(oci_registry_token: Registry) -> None:
    oci_registry_token.push("team/api", "1.0")
    now = [0.0]
    http = RegistryHTTP(oci_registry_token.url, USER, PASSWORD, clock=lambda: now[0])
    registry = RegistryClient(http)
    assert registry.tags("team/api") == ["1.0"]
    now[0] += 3600  # past the token's lifetime: a new one before the next request
    assert registry.tags("team/api") == ["1.0"]
    assert http.tokens_fetched == 2
    http._tokens["repository:team/api:pull"] = ("revoked", float("inf"))
    assert registry.tags("team/api") == ["1.0"]  # 401, one new token, retried
    assert http.tokens_fetched == 3


def test_token_service_refusing_credentials(oci_registry_token: Registry) -> None:
    with pytest.raises(SourceAuthError, match="token service refused user alice"):
        client(oci_registry_token, username=USER, password="wrong").catalog()


def test_token_without_the_scope_is_refused_by_the_registry(oci_registry_token: Registry) -> None:
    oci_registry_token.push("team/api", "1.0")
    issuer = oci_registry_token.issuer
    assert issuer is not None
    pull_web = issuer.token(["repository:team/web:pull"])
    response = requests.get(
        f"{oci_registry_token.url}/v2/team/api/tags/list",
        headers={"Authorization": f"Bearer {pull_web}"},
        timeout=10,
    )
    assert response.status_code == 401  # the real registry checks the granted scopes
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


# -- the resource ---------------------------------------------------------------------------
def test_resource(oci_registry_basic: Registry) -> None:
    for tag in ("1.0", "1.1"):
        oci_registry_basic.push("team/api", tag)
    resource = RegistryResource(
        url=oci_registry_basic.url,
        username=USER,
        password=PASSWORD,
        page_size=1,
        repositories=["team/*"],
    )
    assert resource.configured() and resource.host == oci_registry_basic.host
    assert resource.catalog() == ["team/api"]
    assert sorted(resource.tags("team/api")) == ["1.0", "1.1"]
    assert resource.digest("team/api", "1.1") == oci_registry_basic.pushed["team/api:1.1"]
    assert resource.created("team/api", "1.0") == CREATED
    assert resource.manifest("team/api", "1.0").digest == oci_registry_basic.pushed["team/api:1.0"]
    assert [i.tag for i in resource.images()] == ["1.0", "1.1"]
    assert resource.client() is resource.client()
