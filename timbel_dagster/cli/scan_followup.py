"""`timbel scan gate|history|issues|sonar`: the security policy and the follow-up of findings.

Registered on the `scan` group by `cli/security.py` (FOLLOW_UP).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from timbel_dagster.cli.common import (
    connect,
    friendly_errors,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.cli.images import between_reads, registry_lookup
from timbel_dagster.cli.tables import (
    Column,
    count,
    day,
    days,
    missing,
    print_table,
    right,
    say,
    when,
)
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.security import history as h
from timbel_dagster.security.gitlab_issues import announce, sync_issues
from timbel_dagster.security.policy import check_image, load_policy
from timbel_dagster.security.sonarqube import SonarQubeClient, import_quality_gate
from timbel_dagster.warehouse.audit.chain import append_event

LIMIT = 20  # rows per table `scan history` prints unless --limit or --all says otherwise
NO_SCANS = (
    "no deployments with an image yet: load the sample (`timbel sample`) or ingest deployments, "
    "then scan images (`timbel scan image REF`, `timbel scan import REPORT.json`)"
)


def _tag(image: Any) -> str:
    """What tells a service's images apart: the tag (`784ccfd`), or the digest's start."""
    image = str(image)
    if "@" in image:
        return image.rsplit("@", 1)[1][:19]
    name, _, tag = image.rpartition(":")
    return tag if name and "/" not in tag else image


def _counts(*levels: str) -> Callable[[dict[str, Any]], str]:
    """`2/5/10/3`: the findings of each level; `-` when there was no scan to count them."""

    def cell(row: dict[str, Any]) -> str:
        values = [row.get(level) for level in levels]
        never = row.get("scanned") is False or missing(row.get("open_now_critical", 0))
        if never or any(missing(v) for v in values):
            return "-"
        return "/".join(str(int(v)) for v in values)

    return cell


OPEN_AT_DEPLOY = Column(
    "OPEN C/H/M/L", _counts("critical", "high", "medium", "low"), justify="right"
)
OPEN_NOW = Column("NOW C/H", _counts("open_now_critical", "open_now_high"), justify="right")
NOTES = {
    "services": "C/H/M/L: critical/high/medium/low findings open in the image when it was last "
    "deployed; NOW: open in its newest scan; - never scanned",
    "deployments": "C/H/M/L: critical/high/medium/low findings open in the image when it was "
    "deployed; - no scan by then",
}


def _history_tables(tables: dict[str, Any], latest_only: bool) -> dict[str, tuple]:
    """Per table `scan history` prints: its title, rows (newest first), columns, the sentence
    for no rows, and what its rows are."""
    shown: dict[str, tuple] = {}
    for name, frame in tables.items():
        rows = frame.to_dict("records")
        if name == "scans":
            columns = [
                Column("SCANNED", "scanned_at", when),
                Column("ARTIFACT", "artifact_key", keep_end=True, max_width=24),
                Column(
                    "OPEN C/H/M/L/U",
                    _counts("critical", "high", "medium", "low", "unknown"),
                    justify="right",
                ),
                right("NEW", "new", count),
                right("FIXED", "fixed", count),
            ]
            shown[name] = (
                "scans",
                rows[::-1],
                columns,
                "  no successful scan of this image",
                "scans",
            )
        elif name in ("services", "images"):
            # Per service (by name), its images newest first.
            rows = sorted(rows, key=lambda r: r["last_deployed"], reverse=True)
            rows.sort(key=lambda r: r["service"])
            title, what = "images", "images"
            if latest_only and name == "services":
                seen: set[str] = set()
                rows = [r for r in rows if not (r["service"] in seen or seen.add(r["service"]))]
                title = "services (the image each deployed last; --all: every image)"
                what = "services"
            columns = [
                Column("SERVICE", "service"),
                Column("TAG", "image", _tag),
                right("DEPLOYS", "deployments", count),
                Column("ENVIRONMENTS", "environments"),
                Column("LAST", "last_deployed", day),
                OPEN_AT_DEPLOY,
                OPEN_NOW,
            ]
            if name == "images":
                columns = columns[1:]
            empty = NO_SCANS if name == "services" else "  no deployment of it names an image"
            shown[name] = (title, rows, columns, empty, what)
        elif name == "deployments":
            columns = [
                Column("STARTED", "started_at", when),
                Column("ENV", "environment"),
                Column("TAG", "image", _tag),
                Column("STATUS", "status"),
                Column("SCANNED", "scanned", lambda v: "yes" if v else "no"),
                OPEN_AT_DEPLOY,
            ]
            empty = "  no deployment of it names an image"
            shown[name] = ("deployments", rows[::-1], columns, empty, "deployments")
        else:  # time_to_fix
            columns = [
                Column("SEVERITY", "severity"),
                right("FIXED", "fixed", count),
                right("OPEN", "open", count),
                right("MEDIAN DAYS TO FIX", "median_days", days),
                right("P90", "p90_days", days),
            ]
            shown[name] = ("time to fix", rows, columns, "  no findings yet", "severities")
    return shown


def _records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows (ISO times, null for missing)."""
    import json

    return json.loads(frame.to_json(orient="records", date_format="iso"))


@click.command("gate")
@click.argument("image")
@click.option("--group", required=True, help="dev, staging or prod.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Security policy YAML (default TIMBEL_SECURITY_POLICY_FILE, else the built-in one).",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def gate(image: str, group: str, policy_file: Path | None, as_json: bool) -> None:
    """Would the security policy let IMAGE be deployed to --group? Exit code 1 when it blocks.

    IMAGE is judged by digest whatever its form: a tag is resolved through the warehouse's
    registry_images, then the configured registry (HARBOR_REGISTRY)."""

    settings = settings_or_exit()
    policy = load_policy(policy_file or settings.timbel_security_policy_file)
    with connect() as connection:
        lookup = between_reads(connection, registry_lookup(settings))
        result = check_image(connection, image, group, policy, lookup=lookup)
    if as_json:
        print_json(result.to_dict())
    else:
        click.echo(result.summary)
        verdicts = (("BLOCKS", result.blocking), ("warns", result.warnings),
                    ("ignored", result.ignored))  # fmt: skip
        if any(findings for _, findings in verdicts):
            print_table(
                [f | {"verdict": kind} for kind, findings in verdicts for f in findings],
                [
                    Column("VERDICT", "verdict"),
                    Column("VULNERABILITY", "vulnerability_id"),
                    Column("PACKAGE", "pkg_name"),
                    Column("VERSION", "installed_version"),
                    Column("WHY", "reason", wrap=True),
                ],
                empty="",
            )
        for note in result.notes:
            if note != result.summary:
                say(f"note: {note}")
    if not result.allowed:
        sys.exit(1)


@click.command("history")
@click.option("--image", default=None, help="One image: its scans, newest first.")
@click.option("--service", default=None, help="One service: its images and deployments.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help=f"Rows per table (default {LIMIT}; --json prints every row unless this is given).",
)
@click.option("--all", "show_all", is_flag=True, help="Every row, and every image of each service.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def history(
    image: str | None, service: str | None, limit: int | None, show_all: bool, as_json: bool
) -> None:
    """Vulnerability history: per image, per service and deployment, and time to fix. Without
    --image or --service: each service's latest image (--all: every image it deployed).

    Images are matched to their scans by digest: a tag through registry_images, then the
    configured registry (HARBOR_REGISTRY)."""

    if image and service:
        raise click.UsageError("give --image or --service, not both")
    if show_all and limit:
        raise click.UsageError("give --limit or --all, not both")
    registry = registry_lookup(settings_or_exit())
    with connect() as connection:
        lookup = between_reads(connection, registry)
        if image:
            tables = {"scans": h.image_history(connection, image, lookup)}
        elif service:
            tables = {
                "images": h.service_history(connection, service, lookup),
                "deployments": h.deployment_exposure(connection, service, lookup=lookup),
            }
        else:
            tables = {
                "services": h.service_history(connection, lookup=lookup),
                "time_to_fix": h.time_to_fix(connection),
            }
    if as_json:
        head = {"image": image} if image else ({"service": service} if service else {})
        print_json(
            head
            | {
                name: _records(frame if limit is None else frame.head(limit))
                for name, frame in tables.items()
            }
        )
        return
    rows_at_most = None if show_all else (limit or LIMIT)
    shown = _history_tables(tables, latest_only=not (show_all or image or service))
    for number, (title, rows, columns, empty, what) in enumerate(shown.values()):
        whole = what == "severities" or not rows_at_most  # time to fix: five rows, always
        cut = rows if whole else rows[:rows_at_most]
        print_table(
            cut,
            columns,
            empty=empty,
            footer=f"{len(cut)} of {len(rows)} {what}: --limit N or --all for more"
            if len(cut) < len(rows)
            else None,
            title=("\n" if number else "") + f"{title}:",
        )
        if cut and what in ("services", "images", "deployments"):
            say(NOTES["deployments" if what == "deployments" else "services"])


@click.group("issues")
def issues() -> None:
    """GitLab issues for CRITICAL and HIGH vulnerability findings."""


@issues.command("sync")
@click.option("--project", required=True, help="GitLab project id or path (group/project).")
@click.option(
    "--severity",
    "severities",
    multiple=True,
    default=("CRITICAL", "HIGH"),
    show_default=True,
    help="Severities that get an issue (repeat the option).",
)
@click.option("--image", default=None, help="Only open issues for this image's findings.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Open at most N issues.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def sync(
    project: str, severities: tuple[str, ...], image: str | None, limit: int | None, as_json: bool
) -> None:
    """Open an issue per new finding, close the issues of fixed findings (uses GITLAB_URL,
    GITLAB_TOKEN); subscribers of `issue_created` are told about each new issue."""
    import logging

    # lazy: notify.dispatch loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.resources.gitlab.client import GitLabHTTP

    settings, engine = writable_engine()
    if not settings.gitlab_url:
        raise SourceNotConfiguredError("GitLab is not configured: set GITLAB_URL and GITLAB_TOKEN")
    token = settings.gitlab_token.get_secret_value() if settings.gitlab_token else None
    gitlab = GitLabHTTP(
        str(settings.gitlab_url),
        token,
        max_requests_per_second=settings.gitlab_max_requests_per_second,
    )
    with engine.begin() as connection:
        result = sync_issues(
            connection, gitlab, project, severities=severities, artifact=image, limit=limit
        )
        counts = {k: v for k, v in result.items() if k != "issues"}
        append_event(
            connection,
            actor=settings.timbel_user,
            action="scan.issues.sync",
            target=project,
            details=counts | {"issues": [i["iid"] for i in result["issues"]]},
        )
    if result["issues"]:  # after the commit: the dispatcher writes through its own connections
        quiet = logging.getLogger("timbel_dagster.cli.scan.channels")
        quiet.setLevel(logging.ERROR)
        announce(Dispatcher.from_settings(settings, engine=engine, log=quiet), result["issues"])
    if as_json:
        print_json(result)
        return
    click.echo(", ".join(f"{n} {k}" for k, n in counts.items()))
    for issue in result["issues"]:
        click.echo(f"  #{issue['iid']} {issue['title']}")


@click.group("sonar")
def sonar() -> None:
    """SonarQube quality gates."""


@sonar.command("import")
@click.argument("project_key")
@click.option("--url", default=None, help="SonarQube server (default SONARQUBE_URL).")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def sonar_import(project_key: str, url: str | None, as_json: bool) -> None:
    """Store the quality gate and measures of PROJECT_KEY's latest analysis (token from
    SONARQUBE_TOKEN)."""

    settings, engine = writable_engine()
    url = url or settings.sonarqube_url
    if not url:
        raise SourceNotConfiguredError("SonarQube is not configured: set SONARQUBE_URL")
    client = SonarQubeClient(
        str(url),
        settings.sonarqube_token.get_secret_value() if settings.sonarqube_token else None,
    )
    with engine.begin() as connection:
        result = import_quality_gate(connection, client, project_key)
        append_event(
            connection,
            actor=settings.timbel_user,
            action="scan.sonar.import",
            target=project_key,
            details={k: result[k] for k in ("analysed_at", "status", "written")},
        )
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{project_key}: {result['status']} (analysed {result['analysed_at'] or 'never'}), "
        + ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result["measures"].items()
        )
    )


FOLLOW_UP = (gate, history, issues, sonar)
