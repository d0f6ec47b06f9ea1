"""GitLab issues for open CRITICAL and HIGH vulnerability findings, closed once fixed.

One issue per finding (one vulnerability of one package version in one target of one
image), labelled `security` and `severity::critical|high`. `security_issue_links` remembers
each finding's issue; the issue's description also carries a hidden marker with the finding's
id, so an issue opened by a sync whose transaction then rolled back is found again (and
adopted) instead of opened twice. A finding that a later scan no longer reports (`fixed_at`)
gets a note and its issue closed; if it comes back, the issue Timbel closed is reopened. An
issue a person closed stays closed.

`sync_issues` works on the caller's connection and transaction; notify the people subscribed
to `issue_created` with `announce` after it commits (the dispatcher writes through its own
connections).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.messages import Message
from timbel_dagster.security.issue_text import LABEL, issue_description, issue_labels, issue_title
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding as F
from timbel_dagster.warehouse.schema.security_issues import SecurityIssueLink as L

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.resources.gitlab.client import GitLabHTTP

SEVERITIES = ("CRITICAL", "HIGH")
_MARKER = re.compile(r"<!-- timbel:finding=([0-9a-fA-F-]{32,36}) -->")


def _put(gitlab: GitLabHTTP, path: str, obj: str, data: dict[str, Any]) -> dict[str, Any]:
    """PUT through python-gitlab with GitLabHTTP's retries and typed errors (it has no `put`)."""
    import gitlab as python_gitlab
    import requests

    try:
        value = gitlab.gl.http_put(path, post_data=data, max_retries=gitlab.max_retries)
    except (python_gitlab.exceptions.GitlabError, requests.RequestException) as error:
        raise gitlab._error(error, obj) from None
    return gitlab._expect(value, dict, obj)


def _findings(connection: Connection, where: Any) -> dict[uuid.UUID, dict[str, Any]]:
    from sqlalchemy import select

    table = VulnerabilityFinding.__table__
    rows = connection.execute(select(table).where(where)).mappings()
    return {r["id"]: dict(r) for r in rows}


def _gitlab_issues(gitlab: GitLabHTTP, ref: str, project: str) -> dict[uuid.UUID, dict]:
    """Timbel's security issues in the project, by the finding id in their marker."""
    found: dict[uuid.UUID, dict] = {}
    for issue in gitlab.pages(
        f"/projects/{ref}/issues", f"project {project} issues", labels=LABEL, state="all"
    ):
        match = _MARKER.search(issue.get("description") or "")
        if match:
            found.setdefault(uuid.UUID(match.group(1)), issue)  # oldest wins: newest first
    return found


def _gitlab_time(value: str | None, default: dt.datetime) -> dt.datetime:
    if not value:
        return default
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


_FIXED = (
    "Fixed: the scan of `{artifact_name}` at {fixed_at:%Y-%m-%d %H:%M} UTC no longer reports "
    "{vulnerability_id} in `{pkg_name}`. Closed by Timbel."
)
_BACK = (
    "Back: the scan of `{artifact_name}` at {last_seen:%Y-%m-%d %H:%M} UTC reports "
    "{vulnerability_id} in `{pkg_name}` again. Reopened by Timbel."
)
_OPENED_KEYS = ("vulnerability_id", "pkg_name", "installed_version", "fixed_version", "severity",
                "artifact_name")  # fmt: skip


class _Sync:
    """One sync of one project: the stored links, GitLab's issues, and the counts."""

    def __init__(
        self, connection: Connection, gitlab: GitLabHTTP, project: str, now: dt.datetime
    ) -> None:
        from sqlalchemy import select

        # lazy: resources.gitlab.client loads requests; `timbel --help` loads without it
        from timbel_dagster.resources.gitlab.client import project_ref

        self.connection, self.gitlab, self.project, self.now = connection, gitlab, project, now
        self.ref = project_ref(project)
        self.counts = dict.fromkeys(
            ("opened", "closed", "reopened", "unchanged", "adopted", "deferred"), 0
        )
        self.opened: list[dict[str, Any]] = []
        query = select(L.__table__).where(L.project == project)
        self.links = {r["finding_id"]: dict(r) for r in connection.execute(query).mappings()}
        self.remote = _gitlab_issues(gitlab, self.ref, project)

    def save(self, finding_id: uuid.UUID, **values: Any) -> None:
        from sqlalchemy import update

        self.connection.execute(
            update(L)
            .where(L.finding_id == finding_id, L.project == self.project)
            .values(updated_at=self.now, **values)
        )

    def reconcile(self, finding_id: uuid.UUID, link: dict[str, Any]) -> None:
        """Take GitLab's word on a state someone changed there (a person's close stays)."""
        issue = self.remote.get(finding_id)
        if not issue or issue["iid"] != link["issue_iid"] or issue["state"] == link["state"]:
            return
        closed = issue["state"] == "closed"
        link |= {
            "state": issue["state"],
            "close_reason": "gitlab" if closed else None,
            "closed_at": _gitlab_time(issue.get("closed_at"), self.now) if closed else None,
        }
        self.save(finding_id, **{k: link[k] for k in ("state", "close_reason", "closed_at")})

    def _comment_and(self, link: dict[str, Any], note: str, event: str) -> None:
        path = f"/projects/{self.ref}/issues/{link['issue_iid']}"
        obj = f"project {self.project} issue #{link['issue_iid']}"
        self.gitlab.post(f"{path}/notes", obj, {"body": note})
        _put(self.gitlab, path, obj, {"state_event": event})

    def follow_up(self, finding_id: uuid.UUID, link: dict[str, Any], finding: dict | None) -> None:
        """Close the issue of a fixed finding; reopen one Timbel closed if it came back."""
        self.reconcile(finding_id, link)
        if finding and finding["fixed_at"] is not None and link["state"] == "opened":
            self._comment_and(link, _FIXED.format(**finding), "close")
            self.save(finding_id, state="closed", close_reason="fixed", closed_at=self.now)
            self.counts["closed"] += 1
        elif finding and finding["fixed_at"] is None and link["close_reason"] == "fixed":
            self._comment_and(link, _BACK.format(**finding), "reopen")
            self.save(finding_id, state="opened", close_reason=None, closed_at=None)
            self.counts["reopened"] += 1
        else:
            self.counts["unchanged"] += 1

    def open(self, finding: dict[str, Any]) -> None:
        """Open the finding's issue (or adopt the one its marker names) and link it."""
        from sqlalchemy import insert

        issue = self.remote.get(finding["id"])
        if issue is None:
            title = issue_title(finding)
            data = {
                "title": title,
                "description": issue_description(finding),
                "labels": ",".join(issue_labels(finding)),
            }
            issue = self.gitlab.post(
                f"/projects/{self.ref}/issues", f"project {self.project}", data
            )
            self.counts["opened"] += 1
            where = {"project": self.project, "iid": issue["iid"], "web_url": issue.get("web_url")}
            self.opened.append(where | {"title": title} | {k: finding[k] for k in _OPENED_KEYS})
        else:
            self.counts["adopted"] += 1
        closed = issue.get("state") == "closed"
        self.connection.execute(
            insert(L).values(
                finding_id=finding["id"],
                project=self.project,
                issue_iid=issue["iid"],
                web_url=issue.get("web_url"),
                state="closed" if closed else "opened",
                close_reason="gitlab" if closed else None,  # adopted closed: a person's close
                opened_at=_gitlab_time(issue.get("created_at"), self.now),
                closed_at=_gitlab_time(issue.get("closed_at"), self.now) if closed else None,
                created_at=self.now,
                updated_at=self.now,
            )
        )


def sync_issues(
    connection: Connection,
    gitlab: GitLabHTTP,
    project: str,
    *,
    severities: Iterable[str] = SEVERITIES,
    artifact: str | None = None,
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Open an issue in `project` for each open finding of `severities` that has none, close
    the issues of fixed findings, and reopen those Timbel closed whose finding came back.

    Args:
        connection: an open connection inside a transaction (links are written there).
        gitlab: the GitLab client.
        project: a project id or path (`group/project`).
        severities: which open findings get an issue (CRITICAL and HIGH by default).
        artifact: only open issues for findings of this artifact (image) name.
        limit: open at most this many issues in this call (the rest wait: `deferred`).
        now: the time recorded; now by default.

    Returns:
        Counts `opened`, `closed`, `reopened`, `unchanged` (linked findings needing nothing),
        `adopted` (issues found by their marker), `deferred`, and `issues`: the issues opened
        (give them to `announce` once the transaction committed).

    Raises:
        SourceError: GitLab refused or failed; what was done before stays in the transaction.
    """
    from sqlalchemy import and_

    wanted = tuple(s.upper() for s in severities)
    sync = _Sync(connection, gitlab, project, now or dt.datetime.now(dt.UTC))
    linked = _findings(connection, F.id.in_(list(sync.links))) if sync.links else {}
    for finding_id, link in sync.links.items():
        sync.follow_up(finding_id, link, linked.get(finding_id))
    where = [F.fixed_at.is_(None), F.severity.in_(wanted)]
    if artifact:
        where.append(F.artifact_name == artifact)
    new = sorted(
        (f for i, f in _findings(connection, and_(*where)).items() if i not in sync.links),
        key=lambda f: (
            wanted.index(f["severity"]),
            f["first_seen"],
            f["artifact_name"],
            f["vulnerability_id"],
            f["pkg_name"],
            f["target"],
        ),
    )
    for finding in new:
        if (
            finding["id"] not in sync.remote
            and limit is not None
            and sync.counts["opened"] >= limit
        ):
            sync.counts["deferred"] += 1
        else:
            sync.open(finding)
    return sync.counts | {"issues": sync.opened}


def announce(dispatcher: Dispatcher, issues: list[dict[str, Any]]) -> int:
    """Send `issue_created` for each issue `sync_issues` opened; how many were sent."""

    for issue in issues:
        dispatcher.send(
            Message(
                event="issue_created",
                key=f"issue:{issue['project']}:{issue['iid']}",
                title=issue["title"],
                severity="critical" if issue["severity"] == "CRITICAL" else "high",
                context={
                    "issue": f"{issue['project']}#{issue['iid']}: {issue['title']}",
                    "vulnerability": issue["vulnerability_id"],
                    "package": f"{issue['pkg_name']} {issue['installed_version']}",
                    "fixed in": issue["fixed_version"] or "no fix yet",
                    "image": issue["artifact_name"],
                },
                url=issue.get("web_url"),
            )
        )
    return len(issues)
