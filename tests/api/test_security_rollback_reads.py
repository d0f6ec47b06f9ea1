"""GET /security/findings (open findings paged by id, one image's as the gate sees them),
/security/findings/{id}, /security/gate (the verdict `check_image` gives), all tenant scoped
by image, and /rollbacks (tenant scoped, newest first)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import IMAGES, IMAGES_SEEN, reference, store_images, store_tenants
from tests.api.test_execution_reads import SEES, _walk
from tests.security.findings import VULNERABLE, store
from timbel_dagster.security.policy import check_image, image_findings
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Rollback

IMAGE = "registry.example.com/shop/api:1.4.2"


def _headers(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


@pytest.fixture
def scanned(engine, warehouse_url):
    store(warehouse_url, VULNERABLE, IMAGE)
    return engine


def test_findings_page_by_id_and_filter_by_severity(client, scanned) -> None:
    headers = _headers(scanned, "ops")
    every = _walk(client, headers, "/api/v1/security/findings", {"limit": 1})
    with scanned.connect() as connection:
        expected = image_findings(connection, IMAGE)
    assert sorted(f["id"] for f in every) == sorted(f["id"] for f in expected)
    assert [f["id"] for f in every] == sorted(f["id"] for f in every)
    critical = _walk(client, headers, "/api/v1/security/findings",
                     {"severity": "CRITICAL", "image": IMAGE})  # fmt: skip
    assert {f["severity"] for f in critical} == {"CRITICAL"}
    assert len(critical) == 2


def test_findings_of_an_image_never_scanned_are_404(client, scanned) -> None:
    response = client.get("/api/v1/security/findings", params={"image": f"{IMAGE}x"},
                          headers=_headers(scanned, "viewer"))  # fmt: skip
    assert response.status_code == 404


def test_the_gate_is_check_images_verdict(client, scanned) -> None:
    response = client.get("/api/v1/security/gate", params={"image": IMAGE, "group": "prod"},
                          headers=_headers(scanned, "ops"))  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    with scanned.connect() as connection:
        expected = check_image(connection, IMAGE, "prod")
    assert body["allowed"] is expected.allowed is False
    assert body["summary"] == expected.summary
    assert len(body["blocking"]) == len(expected.blocking) == 2


@pytest.mark.parametrize(("params", "loc"), [
    ({"image": IMAGE, "group": "qa"}, ["query", "group"]),
    ({"image": "not an image ref"}, ["query", "image"]),
])  # fmt: skip
def test_bad_gate_parameters_are_422(client, scanned, params, loc) -> None:
    response = client.get("/api/v1/security/gate", params=params,
                          headers=_headers(scanned, "viewer"))  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc


def test_an_image_no_tenants_service_used_is_for_operations_only(client, scanned) -> None:
    # IMAGE is scanned but no deployment or request names it: a viewer in no tenant sees
    # none of its findings and gets the gate's and the image's 404, like an unknown image.
    headers = _headers(scanned, "viewer")
    assert _walk(client, headers, "/api/v1/security/findings", {}) == []
    for path in ("/api/v1/security/findings", "/api/v1/security/gate"):
        hidden = client.get(path, params={"image": IMAGE}, headers=headers)
        unknown = client.get(path, params={"image": f"{IMAGE}x"}, headers=headers)
        assert hidden.status_code == unknown.status_code == 404, (hidden.text, unknown.text)
        assert hidden.json()["detail"].replace(IMAGE, "?") == unknown.json()["detail"].replace(
            f"{IMAGE}x", "?"
        )


@pytest.fixture
def images(engine, warehouse_url) -> dict[str, str]:
    store_tenants(engine, warehouse_url)
    return store_images(engine)


def _image_of(images: dict[str, str]) -> dict[str, str]:
    return {key: image for image, key in images.items()}


@pytest.mark.parametrize("user", sorted(IMAGES_SEEN))
def test_findings_show_only_images_of_the_callers_tenants(client, engine, images, user) -> None:
    every = _walk(client, _headers(engine, "ops"), "/api/v1/security/findings", {"limit": 500})
    per_image = len(every) // len(IMAGES)
    items = _walk(client, _headers(engine, user), "/api/v1/security/findings", {"limit": 3})
    assert {_image_of(images)[i["artifact_key"]] for i in items} == IMAGES_SEEN[user]
    assert len(items) == per_image * len(IMAGES_SEEN[user]) == len({i["id"] for i in items})
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)


@pytest.mark.parametrize("user", sorted(IMAGES_SEEN))
def test_finding_detail_of_another_tenants_image_is_404_like_an_unknown_id(
    client, engine, images, user
) -> None:
    every = _walk(client, _headers(engine, "ops"), "/api/v1/security/findings", {"limit": 500})
    headers = _headers(engine, user)
    for image, key in images.items():
        [first, *_] = [f for f in every if f["artifact_key"] == key]
        response = client.get(f"/api/v1/security/findings/{first['id']}", headers=headers)
        if image in IMAGES_SEEN[user]:
            assert response.status_code == 200, response.text
            assert response.json() == first
        else:
            assert response.status_code == 404, (image, response.text)
            assert response.json()["detail"] == f"no finding with id {first['id']!r}"
    unknown = uuid.UUID(int=7)
    response = client.get(f"/api/v1/security/findings/{unknown}", headers=headers)
    assert response.status_code == 404
    assert response.json()["detail"] == f"no finding with id {str(unknown)!r}"


@pytest.mark.parametrize("user", sorted(IMAGES_SEEN))
@pytest.mark.parametrize("form", ["tag", "digest"])
def test_one_images_findings_and_gate_only_for_its_tenants(
    client, engine, images, user, form
) -> None:
    headers = _headers(engine, user)
    for image in IMAGES:
        ref = reference(image, form)
        listed = client.get("/api/v1/security/findings", params={"image": ref}, headers=headers)
        verdict = client.get("/api/v1/security/gate", params={"image": ref}, headers=headers)
        if image in IMAGES_SEEN[user]:
            assert listed.status_code == verdict.status_code == 200, (listed.text, verdict.text)
            assert {f["artifact_key"] for f in listed.json()["items"]} == {images[image]}
            assert verdict.json()["scanned"] is True and verdict.json()["allowed"] is False
        else:
            assert listed.status_code == verdict.status_code == 404, (image, ref)
            assert (
                listed.json()["detail"]
                == verdict.json()["detail"]
                == (f"no image {ref!r} among those your tenants' services deployed or requested")
            )


def test_an_unscanned_image_a_tenants_service_requested_is_judged_for_it(
    client, engine, images
) -> None:
    # dev_b's ledger asks for an image nothing has scanned: dev_b gets the unscanned verdict
    # and the never-scanned 404 of the list; dev_a gets the 404 of an image not theirs.
    new = f"{reference('ledger', 'tag')[:-4]}:2.0"
    with engine.begin() as connection:
        connection.execute(insert(DeploymentRequest).values(
            id=uuid.uuid4(), number=999, service="ledger", image=new, environment_group="dev",
            reason="r", requested_by="dev_b", status="pending",
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        ))  # fmt: skip
    mine = client.get("/api/v1/security/gate", params={"image": new, "group": "dev"},
                      headers=_headers(engine, "dev_b"))  # fmt: skip
    assert mine.status_code == 200 and mine.json()["scanned"] is False, mine.text
    listed = client.get("/api/v1/security/findings", params={"image": new},
                        headers=_headers(engine, "dev_b"))  # fmt: skip
    assert listed.status_code == 404 and "never scanned" in listed.json()["detail"]
    theirs = client.get("/api/v1/security/gate", params={"image": new, "group": "dev"},
                        headers=_headers(engine, "dev_a"))  # fmt: skip
    assert theirs.status_code == 404, theirs.text


@pytest.fixture
def rolled_back(engine, warehouse_url):
    store_tenants(engine, warehouse_url)
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    rows = [
        {
            "id": uuid.uuid4(), "idempotency_key": f"{service}-{n}", "service": service,
            "cluster": "prod-01", "namespace": service, "from_image": f"{service}:2",
            "to_image": f"{service}:1", "trigger": "health", "reason": "errors",
            "status": "done" if n else "failed", "dry_run": False, "details": {},
            "created_at": t0 + dt.timedelta(minutes=n % 2),  # ties on the time
        }
        for service in ("cart", "ledger", "wiki")
        for n in range(3)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Rollback), rows)
    return engine


@pytest.mark.parametrize("user", sorted(SEES))
def test_rollbacks_show_only_visible_tenants(client, rolled_back, user) -> None:
    items = _walk(client, _headers(rolled_back, user), "/api/v1/rollbacks", {"limit": 2})
    assert {i["service"] for i in items} == SEES[user]
    assert len(items) == 3 * len(SEES[user]) == len({i["id"] for i in items})
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)


def test_rollbacks_filter_by_outcome(client, rolled_back) -> None:
    items = _walk(client, _headers(rolled_back, "ops"), "/api/v1/rollbacks", {"status": "failed"})
    assert len(items) == 3 and {i["status"] for i in items} == {"failed"}
