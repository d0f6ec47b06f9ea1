"""Project issues and their notes for the loopback GitLab (`gitlab_server.FakeGitLab.issues`).

Answers are built from `tests/fixtures/gitlab/issue.json` and `note.json` (the GitLab REST API
v4 "Issues" and "Notes" response shapes). Rules from the API documentation:
- `POST /projects/:id/issues` needs `title` (400 `{"error": "title is missing"}`); `labels`
  is a comma-separated string (an array is accepted too); the answer is 201 with the issue,
  `iid` counting from 1 per project, `state` `opened`;
- `GET /projects/:id/issues` filters by `state` (`opened`, `closed`, `all`: the default)
  and `labels` (comma-separated; an issue must have all of them), newest first, paginated
  like every list (`per_page` at most 100);
- `PUT /projects/:id/issues/:iid` needs at least one of the attributes it can change (400
  otherwise); `state_event` is `close` or `reopen` (400 for anything else); closing sets
  `closed_at` and `closed_by`, reopening clears them;
- `POST /projects/:id/issues/:iid/notes` needs `body` (400 `{"error": "body is missing"}`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from tests.fakes.gitlab_server import FakeGitLab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gitlab"
ISSUE = json.loads((FIXTURES / "issue.json").read_text())
NOTE = json.loads((FIXTURES / "note.json").read_text())
EDITABLE = ("assignee_id", "assignee_ids", "confidential", "created_at", "description",
            "discussion_locked", "due_date", "issue_type", "labels", "milestone_id",
            "state_event", "title", "add_labels", "remove_labels")  # fmt: skip


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


class IssueTracker:
    """Issues per project id; `issues[project_id]` lists them as the API shows them."""

    def __init__(self, fake: FakeGitLab) -> None:
        self.fake = fake
        self.issues: dict[int, list[dict[str, Any]]] = {}
        self.notes: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self._next_id = 500
        self.clock = lambda: dt.datetime.now(dt.UTC)

    # -- state ------------------------------------------------------------------------------
    def create(self, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
        project = self.fake.projects[project_id]
        issues = self.issues.setdefault(project_id, [])
        self._next_id += 1
        iid = len(issues) + 1
        now = _iso(self.clock())
        issue = copy.deepcopy(ISSUE)
        base = f"{self.fake.url}/api/v4/projects/{project_id}/issues/{iid}"
        issue.update(
            id=self._next_id,
            iid=iid,
            project_id=project_id,
            title=body["title"],
            description=body.get("description"),
            labels=_labels(body.get("labels")),
            state="opened",
            created_at=now,
            updated_at=now,
            closed_at=None,
            closed_by=None,
            web_url=f"{self.fake.url}/{project}/-/issues/{iid}",
            references={"short": f"#{iid}", "relative": f"#{iid}", "full": f"{project}#{iid}"},
        )
        issue["_links"] = issue["_links"] | {
            "self": base,
            "notes": f"{base}/notes",
            "award_emoji": f"{base}/award_emoji",
            "project": f"{self.fake.url}/api/v4/projects/{project_id}",
        }
        issues.append(issue)
        return issue

    def find(self, project_id: int, iid: int) -> dict[str, Any] | None:
        return next((i for i in self.issues.get(project_id, []) if i["iid"] == iid), None)

    def set_state(self, issue: dict[str, Any], event: str) -> None:
        now = _iso(self.clock())
        if event == "close" and issue["state"] == "opened":
            issue.update(state="closed", closed_at=now, closed_by=copy.deepcopy(ISSUE["author"]))
        elif event == "reopen" and issue["state"] == "closed":
            issue.update(state="opened", closed_at=None, closed_by=None)
        issue["updated_at"] = now

    # -- HTTP -------------------------------------------------------------------------------
    def route(self, handler: Any, method: str, project_id: int, rest: list[str],
              query: dict[str, str], path: str) -> None:  # fmt: skip
        """Answer a request under `/projects/:id/issues` (`rest` starts with `issues`)."""
        if method == "GET" and rest == ["issues"]:
            return handler._page(self.listed(project_id, query), query, path)
        if method == "POST" and rest == ["issues"]:
            body = self._body(handler)
            if not str(body.get("title") or "").strip():
                return handler._reply(400, {"error": "title is missing"})
            return handler._reply(201, self.create(project_id, body))
        if len(rest) < 2 or not rest[1].isdigit():
            return handler._reply(404, {"message": "404 Not found"})
        issue = self.find(project_id, int(rest[1]))
        if issue is None:
            return handler._reply(404, {"message": "404 Issue Not Found"})
        if method == "GET" and len(rest) == 2:
            return handler._reply(200, issue)
        if method == "PUT" and len(rest) == 2:
            return self._update(handler, issue)
        if method == "POST" and rest[2:] == ["notes"]:
            body = self._body(handler)
            if not str(body.get("body") or "").strip():
                return handler._reply(400, {"error": "body is missing"})
            return handler._reply(201, self._note(project_id, issue, body["body"]))
        if method == "GET" and rest[2:] == ["notes"]:
            return handler._page(self.notes.get((project_id, issue["iid"]), []), query, path)
        return handler._reply(404, {"message": "404 Not Found"})

    def listed(self, project_id: int, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "all")
        wanted = set(_labels(query.get("labels")))
        return [
            i
            for i in sorted(self.issues.get(project_id, []), key=lambda i: -i["id"])
            if state in ("all", i["state"]) and wanted <= set(i["labels"])
        ]

    def _body(self, handler: Any) -> dict[str, Any]:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if "json" in (handler.headers.get("Content-Type") or ""):
            return json.loads(raw or b"{}")
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}

    def _update(self, handler: Any, issue: dict[str, Any]) -> None:
        body = self._body(handler)
        if not any(k in body for k in EDITABLE):
            return handler._reply(
                400, {"error": f"{', '.join(EDITABLE)} are missing, at least one parameter "
                               "must be provided"},
            )  # fmt: skip
        event = body.get("state_event")
        if event is not None and event not in ("close", "reopen"):
            return handler._reply(400, {"error": "state_event does not have a valid value"})
        if event:
            self.set_state(issue, event)
        for key in ("title", "description"):
            if key in body:
                issue[key] = body[key]
        if "labels" in body:
            issue["labels"] = _labels(body["labels"])
        return handler._reply(200, issue)

    def _note(self, project_id: int, issue: dict[str, Any], text: str) -> dict[str, Any]:
        notes = self.notes.setdefault((project_id, issue["iid"]), [])
        self._next_id += 1
        now = _iso(self.clock())
        note = copy.deepcopy(NOTE)
        note.update(
            id=self._next_id,
            body=text,
            created_at=now,
            updated_at=now,
            noteable_id=issue["id"],
            noteable_iid=issue["iid"],
            project_id=project_id,
        )
        notes.append(note)
        issue["user_notes_count"] = len(notes)
        return note
