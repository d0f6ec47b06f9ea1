"""The text of a finding's GitLab issue: title, labels and Markdown description.

The description ends with a hidden marker naming the finding, which `gitlab_issues` uses to
find an issue it opened again.
"""

from __future__ import annotations

from typing import Any

LABEL = "security"
MARKER = "<!-- timbel:finding={} -->"
_TITLE_LIMIT = 255  # GitLab refuses longer titles


def issue_title(finding: dict[str, Any]) -> str:
    """`[CVE-2019-14697] musl 1.1.20-r4 → fixed in 1.1.20-r5 (registry/app:1.0)`."""
    fixed = finding.get("fixed_version")
    title = (
        f"[{finding['vulnerability_id']}] {finding['pkg_name']} {finding['installed_version']} "
        f"→ {f'fixed in {fixed}' if fixed else 'no fix yet'} ({finding['artifact_name']})"
    )
    return title if len(title) <= _TITLE_LIMIT else title[: _TITLE_LIMIT - 1] + "…"


def issue_labels(finding: dict[str, Any]) -> list[str]:
    return [LABEL, f"severity::{finding['severity'].lower()}"]


def _advisory_links(finding: dict[str, Any]) -> list[str]:
    ident = finding["vulnerability_id"]
    links = [finding.get("primary_url")]
    if ident.startswith("CVE-"):
        links.append(f"https://nvd.nist.gov/vuln/detail/{ident}")
    elif ident.startswith("GHSA-"):
        links.append(f"https://github.com/advisories/{ident}")
    return [link for link in dict.fromkeys(links) if link]


def issue_description(finding: dict[str, Any]) -> str:
    """Markdown: what, where, since when, the fix, links, and the hidden finding marker."""
    fixed = finding.get("fixed_version")
    cvss = finding.get("cvss_score")
    rows = [
        ("Severity", finding["severity"] + (f" (CVSS {cvss:g})" if cvss is not None else "")),
        ("Image", f"`{finding['artifact_name']}`"),
        ("Image digest / key", f"`{finding['artifact_key']}`"),
        ("Target", f"`{finding['target']}`"),
        ("Package", f"`{finding['pkg_name']}` {finding['installed_version']}"),
        ("Fixed version", fixed or "none yet"),
        ("First seen", f"{finding['first_seen']:%Y-%m-%d %H:%M} UTC"),
    ]
    lines = [
        f"**{finding['vulnerability_id']}**: {finding.get('title') or 'vulnerability'} in "
        f"`{finding['pkg_name']}`.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "**Fix**: "
        + (
            f"upgrade `{finding['pkg_name']}` to {fixed} and rebuild the image."
            if fixed
            else "no fixed version is known yet; consider mitigations or an `ignore` entry "
            "with a reason in the security policy."
        ),
        "",
        "**Links**:",
        *(f"- {link}" for link in _advisory_links(finding)),
        "",
        "_Opened by Timbel from a Trivy scan. Timbel closes this issue when a scan of the "
        "image no longer reports the finding._",
        "",
        MARKER.format(finding["id"]),
    ]
    return "\n".join(lines)
