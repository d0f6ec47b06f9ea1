"""A users file for `timbel users import`: people to add or update, checked whole first.

```yaml
users:
  - name: minji.kim            # required: the login name Timbel knows them by
    role: developer            # required: developer | team_lead | operations | admin | viewer
    team: payments             # optional: the team must exist (`timbel team add`); the
                               # user becomes a member of it
    display_name: Minji Kim    # optional, as are email and slack_id
    email: minji.kim@example.com
    slack_id: U01234567
  - name: release-bot
    role: developer
    kind: service              # optional: person (the default) | service, an account that
                               # acts only through its API tokens
```

A field left out keeps what is stored (a new user without `kind` is a person); `null` clears
it (not `kind`, which is person or service).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.warehouse.people.users import OPTIONAL, UserEntry, entry_problems

FIELDS = ("name", "role", "kind", *OPTIONAL)


class UsersFileError(ValueError):
    """The users file cannot be used; the message names the file, the entry and the field."""


def _problems(index: int, raw: Any) -> list[str]:
    where = f"users[{index}]"
    if not isinstance(raw, dict):
        return [f"{where}: expected a mapping with name and role, got {type(raw).__name__}"]
    if isinstance(raw.get("name"), str) and raw["name"].strip():
        where += f" ({raw['name']})"
    problems = [f"{where}: unknown field {k!r}" for k in sorted(map(str, set(raw) - set(FIELDS)))]
    values = {k: raw[k] for k in OPTIONAL if k in raw}
    if "kind" in raw and raw["kind"] is None:
        problems.append(f"{where}: 'kind' cannot be null: person or service")
    for key, problem in entry_problems(raw.get("name"), raw.get("role"), values, raw.get("kind")):
        problems.append(f"{where}: {key!r} {problem}")
    return problems


def load_users_file(path: Path) -> list[UserEntry]:
    """Every entry of the file, checked; nothing is returned unless all of them are right.

    Raises:
        UsersFileError: one line naming the file and every entry and field that is wrong.
    """
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsersFileError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsersFileError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None)
        raise UsersFileError(
            f"{path}: not valid YAML{line}" + (f": {problem}" if problem else "")
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise UsersFileError(f"{path}: expected a top-level 'users:' list")
    extra = sorted(map(str, set(data) - {"users"}))
    if extra:
        raise UsersFileError(f"{path}: unknown top-level key(s) {', '.join(extra)}")
    entries: list[Any] = data["users"]
    if not entries:
        raise UsersFileError(f"{path}: the 'users:' list is empty")
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(entries):
        problems += _problems(index, raw)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name in seen:
            problems.append(f"users[{index}] ({name}): 'name' repeats users[{seen[name]}]")
        elif isinstance(name, str):
            seen[name] = index
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise UsersFileError(f"{path}: {count}{'; '.join(problems)}")
    return [
        UserEntry(
            raw["name"], raw["role"], {k: raw[k] for k in OPTIONAL if k in raw}, raw.get("kind")
        )
        for raw in entries
    ]
