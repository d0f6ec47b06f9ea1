"""The same image by tag and by digest gets the same verdict everywhere: `timbel scan gate`,
the final approval and the fast-track of a deployment request, and `timbel scan history
--service`. The scan names the image by digest only (as a scan of `repo@sha256:...` does);
the tag is resolved through `registry_images`, or the real `docker-registry` when the
warehouse does not know it. Before, the tag was "never scanned" and reached prod."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.deploy.known import know, own
from tests.deploy.test_security_gate import NOW, PEOPLE, requests_for
from tests.security.findings import FIXTURES, T1, VULNERABLE
from tests.services import oci_registry as service
from tests.services.oci_registry import Registry
from timbel_dagster.cli.app import main
from timbel_dagster.deploy.requests import RequestError
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.trivy_report import load_report
from timbel_dagster.security.scan_import import import_report
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Deployment
from timbel_dagster.warehouse.store.upsert import bulk_upsert

oci_registry = service.oci_registry
REPOSITORY = "payments/payments-api"
TAG = "1.4.2"
BLOCKED = (
    "CVE-2019-14697 musl 1.1.20-r4 CRITICAL (fixed in 1.1.20-r5); CVE-2019-14697 musl-utils "
    "1.1.20-r4 CRITICAL (fixed in 1.1.20-r5)"
)


@dataclasses.dataclass
class Pushed:
    registry: Registry
    url: str  # the warehouse
    tag: str  # host/payments/payments-api:1.4.2
    digest: str
    by_digest: str  # host/payments/payments-api@sha256:...


@pytest.fixture
def pushed(
    oci_registry: Registry, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Pushed:
    """The image pushed to the real registry, scanned by digest (alpine 3.9's two CRITICAL
    findings), unknown to `registry_images`; the CLI pointed at both."""
    digest = oci_registry.push(REPOSITORY, TAG)
    name = f"{oci_registry.host}/{REPOSITORY}"
    report = dataclasses.replace(
        load_report(FIXTURES / VULNERABLE), artifact_name=f"{name}@{digest}", artifact_digest=digest
    )
    with get_engine(warehouse_url).begin() as connection:
        import_report(connection, report, source="trivy", scanned_at=T1)
    know(warehouse_url, "payments-api")
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "minji.kim")
    monkeypatch.setenv("HARBOR_REGISTRY", oci_registry.url)
    return Pushed(oci_registry, warehouse_url, f"{name}:{TAG}", digest, f"{name}@{digest}")


def gate(image: str, group: str = "prod") -> tuple[int, dict[str, Any]]:
    done = CliRunner().invoke(main, ["scan", "gate", image, "--group", group, "--json"])
    assert done.exit_code in (0, 1), done.output
    return done.exit_code, json.loads(done.stdout)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the image was named."""
    return {k: v for k, v in result.items() if k not in ("image", "notes", "summary")} | {
        "summary": result["summary"].replace(result["image"], "IMAGE")
    }


def test_scan_gate_by_tag_and_by_digest(pushed: Pushed, monkeypatch: pytest.MonkeyPatch) -> None:
    by_tag = gate(pushed.tag)
    by_digest = gate(pushed.by_digest)
    both = gate(f"{pushed.tag}@{pushed.digest}")
    assert by_tag[0] == by_digest[0] == both[0] == 1
    assert verdict(by_tag[1]) == verdict(by_digest[1]) == verdict(both[1])
    assert by_tag[1]["summary"] == "prod: blocked by 2 CRITICAL findings"
    assert by_tag[1]["digest"] == pushed.digest
    assert by_tag[1]["notes"] == [f"{pushed.tag} is {pushed.by_digest} (from registry)"]
    assert by_digest[1]["notes"] == []
    assert gate(pushed.tag, "staging")[0] == gate(pushed.by_digest, "staging")[0] == 0
    text = CliRunner().invoke(main, ["scan", "gate", pushed.tag, "--group", "prod"])
    assert text.exit_code == 1
    lines = text.stdout.splitlines()
    assert lines[0] == "prod: blocked by 2 CRITICAL findings"
    assert [line.split() for line in [lines[1], *lines[3:5]]] == [
        ["VERDICT", "VULNERABILITY", "PACKAGE", "VERSION", "WHY"],
        ["BLOCKS", "CVE-2019-14697", "musl", "1.1.20-r4", "CRITICAL,", "fixed", "in", "1.1.20-r5"],
        ["BLOCKS", "CVE-2019-14697", "musl-utils", "1.1.20-r4", "CRITICAL,", "fixed", "in",
         "1.1.20-r5"],
    ]  # fmt: skip
    assert " ".join(" ".join(lines[5:]).split()) == (
        f"note: {pushed.tag} is {pushed.by_digest} (from registry)"
    )
    # A tag no one knows is never scanned: blocked in prod, reported elsewhere.
    other = f"{pushed.registry.host}/{REPOSITORY}:9.9.9"
    assert gate(other)[1]["summary"] == (
        f"prod: blocked: image {other} was never scanned, and prod requires a scan"
    )
    assert gate(other, "dev")[0] == 0
    # Without a registry to ask, the tag cannot be resolved: blocked, never passed.
    monkeypatch.delenv("HARBOR_REGISTRY")
    offline = gate(pushed.tag)
    assert offline[0] == 1 and offline[1]["summary"] == (
        f"prod: blocked: image {pushed.tag} was never scanned, and prod requires a scan"
    )
    assert offline[1]["notes"][1:] == [
        f"{pushed.tag} is not in registry_images and no registry is configured to ask "
        "(HARBOR_REGISTRY): matched by the name its scans recorded"
    ]
    # Once registry_images knows the tag, the registry is not needed (it is not even up).
    know(pushed.url, "payments-api", {pushed.tag: pushed.digest})
    monkeypatch.setenv("HARBOR_REGISTRY", "http://127.0.0.1:9")
    ingested = gate(pushed.tag)
    assert verdict(ingested[1]) == verdict(by_digest[1])
    assert ingested[1]["notes"] == [f"{pushed.tag} is {pushed.by_digest} (from registry_images)"]


def test_approval_and_fast_track_by_tag_and_by_digest(pushed: Pushed) -> None:
    requests = requests_for(pushed.url)
    # The team check of approvals: shop's lead decides payments-api's team-lead step.
    own(pushed.url, "payments-api", "shop", [name for name, _ in PEOPLE])
    # A tag only the registry knows is a known image: the registry is asked.
    requests.lookup = RegistryResource(url=pushed.registry.url).find_digest
    for number, image in ((1, pushed.tag), (2, pushed.by_digest)):
        made = requests.request("dev", "payments-api", image, "prod", "release")
        assert made["number"] == number
        requests.decide("lead", str(number), approve=True, reason="diff reviewed")
        refusal = f"request #{number}: the prod security policy blocks image {image}: {BLOCKED}"
        with pytest.raises(RequestError) as final:
            requests.decide("ops", str(number), approve=True, reason="ok")
        assert str(final.value) == refusal
        with pytest.raises(RequestError) as fast:
            requests.fast_track("ops", str(number), reason="outage", incident="INC-1")
        assert str(fast.value) == refusal
        assert requests.status(str(number))["status"] == "pending"
    # A lenient group approves both the same way.
    for number, image in ((3, pushed.tag), (4, pushed.by_digest)):
        requests.request("dev", "payments-api", image, "staging", "try")
        assert requests.decide("lead", str(number), True, "ok")["status"] == "approved"
    # No registry to ask and no registry_images row: the tag is not a known image at all.
    requests.lookup = None
    with pytest.raises(RequestError) as unknown:
        requests.request("dev", "payments-api", pushed.tag, "prod", "release")
    assert str(unknown.value) == (
        f"unknown image '{pushed.tag}': not in registry_images or any deployment, and no "
        "registry is configured to ask (HARBOR_REGISTRY)"
    )


def test_scan_history_of_a_service_by_tag_and_by_digest(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": stable_id("deployments", "test", ext), "source": "test", "external_id": ext,
         "service": "payments-api", "environment": "prod", "cluster": None, "image": image,
         "version": None, "commit_from": None, "commit_to": None, "kind": "release",
         "status": "success", "started_at": at, "completed_at": at, "triggered_by": None,
         "execution_id": None}
        for ext, image, at in (("d1", pushed.tag, NOW), ("d2", pushed.by_digest,
                                                         NOW + dt.timedelta(hours=1)))
    ]  # fmt: skip
    with get_engine(pushed.url).begin() as connection:
        bulk_upsert(connection, Deployment.__table__, rows, ["source", "external_id"])

    def history() -> dict[str, Any]:
        done = CliRunner().invoke(main, ["scan", "history", "--service", "payments-api", "--json"])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    found = history()
    assert [(d["image"], d["scanned"], d["critical"]) for d in found["deployments"]] == [
        (pushed.tag, True, 2),
        (pushed.by_digest, True, 2),
    ]
    assert [(i["image"], i["critical"], i["open_now_critical"]) for i in found["images"]] == [
        (pushed.tag, 2, 2),
        (pushed.by_digest, 2, 2),
    ]
    image = CliRunner().invoke(main, ["scan", "history", "--image", pushed.tag, "--json"])
    assert [s["critical"] for s in json.loads(image.stdout)["scans"]] == [2]
    # Without the registry, nothing resolves the tag: its deployment shows as never scanned.
    monkeypatch.delenv("HARBOR_REGISTRY")
    offline = history()
    assert [(d["scanned"], d["critical"]) for d in offline["deployments"]] == [
        (False, 0),
        (True, 2),
    ]


def test_the_sample_organisation_by_tag_and_by_digest(warehouse_url: str) -> None:
    """The issue's case: the sample scanner names images by digest, `timbel scan gate` was
    given the tag. Every listed tag now gets its digest's verdict, and some are blocked."""
    from sqlalchemy import select

    from tests.assets.test_security_sample import _materialize
    from timbel_dagster.security.policy import check_image
    from timbel_dagster.warehouse.schema.registry import RegistryImage as R

    _materialize(warehouse_url, tags=2, max_images=100)
    blocked = 0
    with get_engine(warehouse_url).connect() as connection:
        listed = connection.execute(select(R.registry, R.repository, R.tag, R.digest)).all()
        for registry, repository, tag, digest in listed:
            by_tag = check_image(connection, f"{registry}/{repository}:{tag}", "prod", now=NOW)
            by_digest = check_image(connection, f"{registry}/{repository}@{digest}", "prod",
                                    now=NOW)  # fmt: skip
            assert by_tag.scanned and by_tag.digest == digest
            assert (by_tag.allowed, by_tag.blocking) == (by_digest.allowed, by_digest.blocking)
            blocked += not by_tag.allowed
    assert len(listed) == 24 and blocked > 0
