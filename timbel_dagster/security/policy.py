"""The severity gate: do an image's open vulnerability findings allow a deployment to a group?

The policy itself (built-in defaults, the YAML file, validation) is in `policy_file`. Here:
the findings of an image (`image_findings`), the verdict (`evaluate_gate`) and the hook the
approval of deployment requests calls (`security_gate`).

Per finding, in this order: an active `ignore` entry of its id sets it aside; a `block`
severity blocks, or only warns while no fixed version exists and the group requires one; a
`warn` severity warns, and blocks once it has been open longer than `max_age_days` (again
only with a fix, where one is required); other severities only count in the summary.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.security.image_ref import DigestLookup, Resolved, resolve_digest
from timbel_dagster.security.policy_file import (
    GroupPolicy,
    Policy,
    default_policy,
    load_policy,
    parse_policy,
)
from timbel_dagster.warehouse.schema.security import ScanResult, VulnerabilityFinding

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Connection

__all__ = [
    "GateResult",
    "Policy",
    "check_image",
    "default_policy",
    "evaluate_gate",
    "image_findings",
    "image_scan",
    "load_policy",
    "parse_policy",
    "security_gate",
]

_SHOWN = 10  # findings named in a refusal before "and N more"
_FINDING_COLUMNS = ("vulnerability_id", "pkg_name", "installed_version", "fixed_version",
                    "severity", "target", "artifact_name", "artifact_key", "first_seen",
                    "title", "primary_url", "cvss_score")  # fmt: skip


@dataclass(frozen=True)
class GateResult:
    """The verdict on one image for one environment group.

    Attributes:
        allowed: False when anything blocks.
        blocking: the findings that block, each with `reason`.
        warnings: the findings reported without blocking, each with `reason`.
        summary: one line for people.
        group: the environment group judged for.
        image: the image reference, when known.
        scanned: False when no successful scan of the image is stored.
        ignored: findings set aside by an `ignore` entry, each with `reason`.
        notes: other remarks (an unscanned image, an expired ignore entry, the digest a tag
            resolved to).
        digest: the digest judged (a tag's, once resolved); None when nothing knows it.
    """

    allowed: bool
    blocking: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    summary: str
    group: str
    image: str | None = None
    scanned: bool = True
    ignored: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 text."""

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, dt.datetime) else value

        data = asdict(self)
        for key in ("blocking", "warnings", "ignored"):
            data[key] = [{k: plain(v) for k, v in f.items()} for f in data[key]]
        return data

    def refusal(self) -> str:
        """Why the deployment is refused, naming the blocking findings."""
        where = f"image {self.image}" if self.image else "the image"
        if not self.scanned:
            return f"the {self.group} security policy blocks {where}: {self.summary}"
        named = [
            f"{f['vulnerability_id']} {f['pkg_name']} {f['installed_version']} {f['severity']} "
            + (f"(fixed in {f['fixed_version']})" if f.get("fixed_version") else "(no fix yet)")
            for f in self.blocking[:_SHOWN]
        ]
        more = len(self.blocking) - _SHOWN
        return f"the {self.group} security policy blocks {where}: {'; '.join(named)}" + (
            f"; and {more} more" if more > 0 else ""
        )


def image_scan(
    connection: Connection, image_ref: str | Resolved, lookup: DigestLookup | None = None
) -> dict[str, Any] | None:
    """The newest successful scan of an image, matched by digest whatever the reference: a
    tag is resolved first (`image_ref.resolve_digest`: `registry_images`, then `lookup`, the
    registry). Only a tag that nothing resolves is matched by the artifact name the scanner
    recorded. None when the image was never scanned (or every scan of it failed)."""
    from sqlalchemy import or_, select

    resolved = image_ref
    if not isinstance(resolved, Resolved):
        resolved = resolve_digest(connection, resolved, lookup)
    table = ScanResult.__table__
    digest = resolved.digest
    if digest:
        match = or_(table.c.artifact_digest == digest, table.c.artifact_key == digest)
    else:
        names = {str(resolved.ref), resolved.ref.tagged or str(resolved.ref), resolved.raw}
        match = table.c.artifact_name.in_(sorted(names))
    row = (
        connection.execute(
            select(table.c.id, table.c.artifact_key, table.c.artifact_name, table.c.scanned_at)
            .where(match, table.c.status != "failed")
            .order_by(table.c.scanned_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def image_findings(
    connection: Connection, image_ref: str | Resolved, lookup: DigestLookup | None = None
) -> list[dict[str, Any]] | None:
    """The open vulnerability findings (`fixed_at` unset) of the image's newest scan, worst
    first; None when the image was never scanned (see `image_scan`; `lookup` asks the
    registry for a tag `registry_images` does not know).

    Only findings that scan reported count (`last_seen` at or after it): an older report
    imported late must not bring back what the newest scan no longer shows.
    """
    from sqlalchemy import select

    scan = image_scan(connection, image_ref, lookup)
    if scan is None:
        return None
    table = VulnerabilityFinding.__table__
    rows = connection.execute(
        select(table.c.id, *(table.c[c] for c in _FINDING_COLUMNS))
        .where(table.c.artifact_key == scan["artifact_key"], table.c.fixed_at.is_(None))
        .where(table.c.last_seen >= scan["scanned_at"])
        .order_by(table.c.vulnerability_id, table.c.pkg_name, table.c.target)
    ).mappings()
    found = [dict(r) | {"id": str(r["id"])} for r in rows]
    found.sort(key=lambda f: SEVERITIES.index(f["severity"]))
    return found


def _verdict(
    finding: Mapping[str, Any], rules: GroupPolicy, now: dt.datetime
) -> tuple[str, str] | None:
    """('block' | 'warn', reason) for one finding that is not ignored, or None."""
    severity, fixed = finding["severity"], finding.get("fixed_version")
    fix = f"fixed in {fixed}" if fixed else "no fixed version yet"
    if severity in rules.block:
        if rules.require_fix_available and not fixed:
            return "warn", f"{severity}, {fix}: blocks once a fix exists"
        return "block", f"{severity}, {fix}"
    if severity in rules.warn:
        first_seen = finding.get("first_seen")
        age = (now - first_seen).days if first_seen else 0
        if rules.max_age_days is not None and age > rules.max_age_days:
            if rules.require_fix_available and not fixed:
                return "warn", f"{severity} open {age} days, {fix}"
            return "block", f"{severity} open {age} days (> {rules.max_age_days}), {fix}"
        return "warn", f"{severity}, {fix}"
    return None


def _summary(group: str, blocking: list, warnings: list, ignored: list) -> str:
    counts = Counter(f["severity"] for f in blocking)
    parts = [
        f"{group}: "
        + (
            "blocked by "
            + ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
            + f" finding{'s' if len(blocking) != 1 else ''}"
            if blocking
            else "allowed"
        )
    ]
    if warnings:
        parts.append(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}")
    if ignored:
        parts.append(f"{len(ignored)} ignored")
    return "; ".join(parts)


def evaluate_gate(
    findings: Sequence[Mapping[str, Any]] | None,
    group: str,
    policy: Policy | None = None,
    *,
    now: dt.datetime | None = None,
    image: str | None = None,
) -> GateResult:
    """Judge `findings` (as `image_findings` returns them; None: never scanned) for `group`.

    Args:
        findings: open findings with at least `vulnerability_id`, `pkg_name`,
            `installed_version`, `fixed_version`, `severity` and `first_seen`.
        group: dev, staging or prod.
        policy: the policy; the built-in one by default.
        now: the time the age of findings and the expiry of ignores are measured at.
        image: named in the summary and the refusal.

    Raises:
        ValueError: an unknown group.
    """
    policy = policy or default_policy()
    rules = policy.group(group)
    now = now or dt.datetime.now(dt.UTC)
    if findings is None:
        what = f"image {image}" if image else "the image"
        if rules.require_scan:
            summary = f"{group}: blocked: {what} was never scanned, and {group} requires a scan"
        else:
            summary = f"{group}: allowed: {what} was never scanned (not required for {group})"
        return GateResult(rules.require_scan is False, [], [], summary, group, image, False,
                          notes=[summary])  # fmt: skip
    blocking, warnings, ignored, notes = [], [], [], []
    ignores = {i.id: i for i in rules.ignore}
    for finding in findings:
        entry = ignores.get(finding["vulnerability_id"])
        if entry and entry.active(now.date()):
            ignored.append(dict(finding) | {"reason": entry.reason})
            continue
        if entry:
            notes.append(
                f"the ignore entry of {entry.id} expired on {entry.expires}; it counts again"
            )
        verdict = _verdict(finding, rules, now)
        if verdict:
            (blocking if verdict[0] == "block" else warnings).append(
                dict(finding) | {"reason": verdict[1]}
            )
    summary = _summary(group, blocking, warnings, ignored)
    return GateResult(
        not blocking, blocking, warnings, summary, group, image, True, ignored,
        list(dict.fromkeys(notes)),
    )  # fmt: skip


def check_image(
    connection: Connection,
    image: str,
    group: str,
    policy: Policy | None = None,
    *,
    now: dt.datetime | None = None,
    lookup: DigestLookup | None = None,
) -> GateResult:
    """The gate for `image` in `group`, judged by digest whatever the reference: a tag is
    resolved through `registry_images`, then `lookup` (the registry's manifest HEAD); the
    result's notes say what it resolved to.

    Raises:
        ValueError: `image` is not an image reference, or an unknown group.
    """
    (policy or default_policy()).group(group)  # an unknown group fails before any lookup
    resolved = resolve_digest(connection, image, lookup)
    result = evaluate_gate(
        image_findings(connection, resolved), group, policy, now=now, image=image
    )
    note = resolved.note()
    return replace(
        result, digest=resolved.digest, notes=[*result.notes, note] if note else result.notes
    )


def security_gate(
    connection: Connection,
    request: Mapping[str, Any],
    policy: Policy | None = None,
    now: dt.datetime | None = None,
    lookup: DigestLookup | None = None,
) -> GateResult:
    """The gate for a deployment request (`image`, `environment_group`): the hook the final
    approval and fast-track of `deploy.requests.Requests` call before approving."""
    return check_image(
        connection,
        request["image"],
        request["environment_group"],
        policy,
        now=now,
        lookup=lookup,
    )
