"""Trivy reports of the sample organisation's images, behind the same interface as Trivy.

Each sample service is built on a stack (a base image and a language runtime) whose packages
carry real, public vulnerabilities, taken with their Trivy data (severity, title, fixed
version, NVD CVSS, publication date) from reports Trivy itself wrote in its integration
tests (aquasecurity/trivy, `integration/testdata/*.json.golden`). The installed versions are
real releases those advisories affect.

What an image reports is fixed by the image alone: its service and how many builds of that
service came after it (`SampleImage.rank`). Each component of a service (a group of packages
upgraded together, like libssl and libcrypto) is upgraded at a build of its own, drawn from
a hash of the service and the component: images from that build on no longer report the
advisories the upgrade fixes, so newer images of a service fix some findings of older ones.
Advisories without a fixed version (Debian's bash) stay in every image. The report is built
as Trivy's JSON (schema version 2) and read by the same parser as a real one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.resources.sample.organisation import SAMPLE_SOURCE
from timbel_dagster.resources.sample.scanner_catalogue import STACKS, Component, Stack
from timbel_dagster.resources.trivy_report import parse_report

if TYPE_CHECKING:
    from timbel_dagster.records.trivy import ScanReport
    from timbel_dagster.resources.sample.registry import SampleImage, SampleRegistry

SCAN_DELAY = dt.timedelta(minutes=3)  # a scan runs when the image is pushed
# Where a component's upgrade lands: `hash % 9 - 3` builds before the newest, so about 4 in
# 9 components are not upgraded yet (open in the newest image), 4 in 9 are upgraded in one
# of the 4 builds after the oldest listed (5 tags), and 1 in 9 just before those.
_UPGRADE_SPREAD, _NOT_YET = 9, 3


def _hash(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big")


def upgraded(service: str, component: Component, rank: int) -> bool:
    """Whether the image `rank` builds before the newest of `service` has `component`
    upgraded past every advisory with a fix.

    The upgrade lands `_hash(service, component) % 9 - 3` builds before the newest (zero or
    less: not upgraded yet); a component with nothing to fix is never upgraded.
    """
    if not any(a.fixed_version for a in component.advisories):
        return False
    return rank < _hash(service, component.key) % _UPGRADE_SPREAD - _NOT_YET


def _vulnerabilities(service: str, stack_type: str, component: Component, rank: int) -> list:
    """Trivy's `Vulnerabilities` entries of one component in one image."""
    still_open = [
        a
        for a in component.advisories
        if not (a.fixed_version and upgraded(service, component, rank))
    ]
    separator = ":" if stack_type == "jar" else "@"  # Trivy's PkgID: group:artifact:version
    entries = []
    for package in component.packages:
        for advisory in still_open:
            entry = {
                "VulnerabilityID": advisory.vulnerability_id,
                "PkgID": f"{package}{separator}{component.installed}",
                "PkgName": package,
                "InstalledVersion": component.installed,
                "FixedVersion": advisory.fixed_version,
                "Status": "fixed" if advisory.fixed_version else "affected",
                "SeveritySource": advisory.severity_source,
                "PrimaryURL": f"https://avd.aquasec.com/nvd/{advisory.vulnerability_id.lower()}",
                "Title": advisory.title,
                "Severity": advisory.severity,
                "CVSS": {"nvd": {"V3Vector": advisory.cvss_vector, "V3Score": advisory.cvss}},
                "PublishedDate": advisory.published,
            }
            # Trivy leaves out empty fields (`omitempty`).
            entries.append({k: v for k, v in entry.items() if v is not None})
    return entries


def report_json(image: SampleImage, artifact_name: str, stack: Stack) -> dict:
    """The Trivy JSON report (schema version 2) of one sample image scanned as
    `artifact_name`."""
    pushed = image.image
    assert pushed.created is not None  # the sample knows every build time
    os_entries = [
        e for c in stack.os_components for e in _vulnerabilities(image.service, "os", c, image.rank)
    ]
    lang_entries = [
        e
        for c in stack.lang_components
        for e in _vulnerabilities(image.service, stack.lang_type, c, image.rank)
    ]
    os_result = {
        "Target": f"{artifact_name} ({stack.os_family} {stack.os_name})",
        "Class": "os-pkgs",
        "Type": stack.os_family,
    } | ({"Vulnerabilities": os_entries} if os_entries else {})
    results = [os_result]
    if stack.lang_components:
        target = stack.lang_target.format(service=image.service)
        results.append(
            {"Target": target, "Class": "lang-pkgs", "Type": stack.lang_type}
            | ({"Vulnerabilities": lang_entries} if lang_entries else {})
        )
    config = "sha256:" + hashlib.sha256(f"config:{pushed.digest}".encode()).hexdigest()
    return {
        "SchemaVersion": 2,
        "CreatedAt": (pushed.created + SCAN_DELAY).isoformat(),
        "ArtifactName": artifact_name,
        "ArtifactType": "container_image",
        "Metadata": {
            "OS": {"Family": stack.os_family, "Name": stack.os_name},
            "ImageID": config,
            "RepoTags": [image.tag_reference],
            "RepoDigests": [pushed.reference],
        },
        "Results": results,
    }


@dataclass
class SampleScanner:
    """Scans images of the sample registry as Trivy would (see the module doc).

    Rows stored from its reports say `source='sample'` (`name`).
    """

    registry: SampleRegistry
    name: str = SAMPLE_SOURCE

    def scan_image(self, ref: str) -> ScanReport:
        """The report of sample image `ref` (`host/repo@sha256:...` or `host/repo:tag`).

        Raises:
            ValueError: `ref` is not an image of the sample organisation (what Trivy does
                for an image it cannot pull is fail, and so does this).
        """
        try:
            image = self.registry.lookup(ref)
        except LookupError as error:
            raise ValueError(f"sample scanner: {error}") from None
        stack = STACKS[image.service]
        return parse_report(json.dumps(report_json(image, ref, stack)), f"sample scan of {ref}")
