"""Vulnerability findings and the security gate's verdict."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

_FINDING = {
    "id": "7d1c0b9e-1f0a-4a8e-9b3e-2c4d5e6f7a80",
    "vulnerability_id": "CVE-2026-1234",
    "pkg_name": "openssl",
    "installed_version": "3.0.2",
    "fixed_version": "3.0.15",
    "severity": "CRITICAL",
    "target": "debian 12",
    "artifact_name": "registry.example.com/shop/checkout:1.4.2",
    "artifact_key": "sha256:9f2c...",
    "first_seen": "2026-11-20T08:00:00Z",
    "last_seen": "2026-12-04T08:00:00Z",
    "fixed_at": None,
    "title": "openssl: buffer overread",
    "primary_url": "https://avd.aquasec.com/nvd/cve-2026-1234",
    "cvss_score": 9.8,
}


class Finding(BaseModel):
    """One vulnerability of one package version in one target of one image."""

    id: str
    vulnerability_id: str
    pkg_name: str
    installed_version: str
    fixed_version: str | None
    severity: str
    target: str
    artifact_name: str
    artifact_key: str = Field(description="The image digest, else its name.")
    first_seen: dt.datetime
    last_seen: dt.datetime
    fixed_at: dt.datetime | None = Field(
        None, description="The first later scan that no longer reported it; null while open."
    )
    title: str | None
    primary_url: str | None
    cvss_score: float | None

    model_config = {"json_schema_extra": {"examples": [_FINDING]}}


class FindingPage(BaseModel):
    """Open vulnerability findings by id."""

    items: list[Finding]
    next_cursor: str | None

    model_config = {"json_schema_extra": {"examples": [{"items": [_FINDING], "next_cursor": None}]}}


class GateVerdict(BaseModel):
    """`timbel scan gate --json`: whether the group's policy lets the image be deployed."""

    allowed: bool
    blocking: list[dict[str, Any]] = Field(description="Findings that block, with `reason`.")
    warnings: list[dict[str, Any]]
    summary: str
    group: str
    image: str | None
    scanned: bool = Field(description="False when no successful scan is stored.")
    ignored: list[dict[str, Any]]
    notes: list[str]
    digest: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "allowed": False,
                    "blocking": [
                        {
                            "vulnerability_id": "CVE-2026-1234",
                            "pkg_name": "openssl",
                            "installed_version": "3.0.2",
                            "severity": "CRITICAL",
                            "reason": "CRITICAL, fixed in 3.0.15",
                        }
                    ],
                    "warnings": [],
                    "summary": "prod: blocked by 1 CRITICAL finding",
                    "group": "prod",
                    "image": "registry.example.com/shop/checkout:1.4.2",
                    "scanned": True,
                    "ignored": [],
                    "notes": [],
                    "digest": "sha256:9f2c...",
                }
            ]
        }
    }
