"""The sample registry and scanner: deterministic images and Trivy reports of the sample
organisation, and how `DeliverySourcesResource` binds them or the real clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from collections import defaultdict
from pathlib import Path

import pytest

from timbel_dagster.records.trivy import SEVERITIES, ScanReport
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.registry_records import OCI_MANIFEST, Image
from timbel_dagster.resources.sample.organisation import SERVICES
from timbel_dagster.resources.sample.registry import HOST, SampleRegistry, sample_digest
from timbel_dagster.resources.sample.scanner import SCAN_DELAY, SampleScanner
from timbel_dagster.resources.sample.scanner_catalogue import STACKS
from timbel_dagster.resources.sample.source import SampleSource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.settings import get_settings

END = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def registry() -> SampleRegistry:
    return SampleRegistry(SampleSource(end_date=END, seed=7))


@pytest.fixture(scope="module")
def scanner(registry: SampleRegistry) -> SampleScanner:
    return SampleScanner(registry)


def _findings(report: ScanReport) -> set[tuple[str, str, str]]:
    return {(v.vulnerability_id, v.pkg_name, v.installed_version) for v in report.vulnerabilities}


def test_digest_is_the_sha256_of_the_reference() -> None:
    reference = "registry.sample.invalid/payments/payments-api:f5829e2"
    assert sample_digest(reference) == (
        "sha256:f2854e0c0a2c29d68fcb8a817f6786e0af8545bda96a9ba24e8018967519c96d"
    )


def test_images_are_the_newest_pushes_of_each_service(registry: SampleRegistry) -> None:
    pushed: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for execution in registry.source.history.executions:
        if execution.artifacts and execution.completed_at:
            repository, _, tag = execution.artifacts["image"].rpartition(":")
            pushed[repository].append((execution.completed_at, tag))
    images = list(registry.images())
    assert images == list(registry.images(details=False))
    assert len(images) == 5 * len(SERVICES) and len(pushed) == len(SERVICES)
    for repository, builds in pushed.items():
        newest = sorted(builds, reverse=True)[:5]
        listed = sorted(
            ((i.created, i.tag) for i in images if i.repository == repository), reverse=True
        )
        assert listed == newest
    for image in images:
        reference = f"{HOST}/{image.repository}:{image.tag}"
        expected = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        assert (image.registry, image.digest, image.media_type) == (HOST, expected, OCI_MANIFEST)
        assert image.size and image.size > 40 * 1024 * 1024
    assert registry.name == "sample" and registry.configured()


def test_the_listing_is_the_same_for_the_same_sample() -> None:
    again = SampleRegistry(SampleSource(end_date=END, seed=7), tags_per_repository=2)
    other = SampleRegistry(SampleSource(end_date=END, seed=8), tags_per_repository=2)
    first = list(again.images())
    assert len(first) == 2 * len(SERVICES)
    assert first == list(SampleRegistry(SampleSource(end_date=END, seed=7), 2).images())
    assert first != list(other.images())
    with pytest.raises(ValueError, match="tags_per_repository must be at least 1"):
        SampleRegistry(SampleSource(end_date=END), tags_per_repository=0)


def test_deployed_images_resolve_by_tag_and_digest(registry: SampleRegistry) -> None:
    for deployment in registry.source.history.deployments[:200]:
        by_tag = registry.lookup(deployment.image)
        assert by_tag.tag_reference == deployment.image
        assert registry.lookup(by_tag.image.reference) == by_tag


@pytest.mark.parametrize(
    "reference",
    [
        "registry.example/shop/api@sha256:" + "a1" * 32,  # another registry
        f"{HOST}/payments/payments-api:0000000",  # no such build
        f"{HOST}/payments/other@" + sample_digest(f"{HOST}/payments/payments-api:f5829e2"),
        "registry.sample.invalid:5000/payments/payments-api",  # neither tag nor digest
    ],
)
def test_anything_else_is_refused(scanner: SampleScanner, reference: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(reference))):
        scanner.scan_image(reference)


def test_reports_are_deterministic_per_digest(
    registry: SampleRegistry, scanner: SampleScanner
) -> None:
    fresh = SampleScanner(SampleRegistry(SampleSource(end_date=END, seed=7)))
    for image in registry.images():
        report = scanner.scan_image(image.reference)
        assert report == fresh.scan_image(image.reference)
        assert (report.artifact_name, report.artifact_digest) == (image.reference, image.digest)
        assert report.artifact_type == "container_image"
        assert report.created_at == image.created + SCAN_DELAY  # type: ignore[operator]
        by_tag = scanner.scan_image(f"{HOST}/{image.repository}:{image.tag}")
        assert by_tag.artifact_digest == image.digest
        assert _findings(by_tag) == _findings(report)


def test_findings_are_real_catalogue_entries(
    registry: SampleRegistry, scanner: SampleScanner
) -> None:
    assert set(STACKS) == {s.name for s in SERVICES}
    catalogue = {
        (a.vulnerability_id, package, c.installed): a
        for stack in STACKS.values()
        for c in (*stack.os_components, *stack.lang_components)
        for a in c.advisories
        for package in c.packages
    }
    seen = set()
    for image in registry.images():
        for v in scanner.scan_image(image.reference).vulnerabilities:
            advisory = catalogue[(v.vulnerability_id, v.pkg_name, v.installed_version)]
            assert re.fullmatch(r"CVE-\d{4}-\d{4,}", v.vulnerability_id)
            assert v.severity == advisory.severity and v.severity in SEVERITIES
            assert (v.title, v.fixed_version) == (advisory.title, advisory.fixed_version)
            assert v.status == ("fixed" if v.fixed_version else "affected")
            assert v.cvss_score == advisory.cvss and v.primary_url
            seen.add(v.severity)
    assert {"CRITICAL", "HIGH", "MEDIUM", "LOW"} <= seen


def test_newer_images_of_a_service_fix_findings_of_older_ones(
    registry: SampleRegistry, scanner: SampleScanner
) -> None:
    by_repository: dict[str, list[Image]] = defaultdict(list)
    for image in registry.images():
        by_repository[image.repository].append(image)
    fixed_somewhere = still_open = 0
    for images in by_repository.values():
        reports = [scanner.scan_image(i.reference) for i in sorted(images, key=lambda i: i.created)]
        for older, newer in itertools.pairwise(reports):
            gone = _findings(older) - _findings(newer)
            assert _findings(newer) <= _findings(older)  # an upgrade never brings one back
            fixable = {
                (v.vulnerability_id, v.pkg_name, v.installed_version)
                for v in older.vulnerabilities
                if v.fixed_version
            }
            assert gone <= fixable  # only what has a fixed version goes away
            fixed_somewhere += bool(gone)
        still_open += any(v.fixed_version for v in reports[-1].vulnerabilities)
    assert fixed_somewhere >= 3  # upgrades land inside the listed tags
    assert still_open >= 3  # and some newest images still carry a fixable finding


def test_sources_bind_the_sample_in_sample_mode() -> None:
    sources = DeliverySourcesResource(
        mode="sample", sample_end_date=END.isoformat(), sample_tags_per_repository=1
    )
    image_source = sources.image_source()
    assert isinstance(image_source, SampleRegistry) and image_source.name == "sample"
    [first, *_] = list(image_source.images())
    assert len(list(image_source.images())) == len(SERVICES)
    scanner = sources.scanner()
    assert isinstance(scanner, SampleScanner) and sources.scanner_name() == "sample"
    assert scanner.scan_image(first.reference).artifact_digest == first.digest


def test_live_mode_binds_the_real_clients(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trivy = TrivyResource(executable="/opt/trivy/trivy")
    registry = RegistryResource(url="https://harbor.example")
    sources = DeliverySourcesResource(mode="live", registry=registry, trivy=trivy)
    assert sources.image_source() == registry
    assert sources.scanner() == trivy and sources.scanner_name() == "trivy"

    monkeypatch.delenv("HARBOR_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file to read it from either
    get_settings.cache_clear()
    try:
        with pytest.raises(SourceNotConfiguredError, match=r"set HARBOR_REGISTRY.*TIMBEL_SAMPLE"):
            DeliverySourcesResource(mode="live").image_source()
    finally:
        get_settings.cache_clear()


def test_images_carry_the_commit_of_their_build_as_revision(registry: SampleRegistry) -> None:
    # As a real build labels its image (org.opencontainers.image.revision), so that deploy
    # rows find the commit the same way in sample and live mode.
    built = {
        (*execution.artifacts["image"].rpartition(":")[::2], execution.completed_at): (
            execution.commit_sha
        )
        for execution in registry.source.history.executions
        if execution.artifacts and execution.completed_at
    }
    images = list(registry.images())
    assert all(i.revision for i in images)
    assert all(i.revision == built[(i.repository, i.tag, i.created)] for i in images)
