"""The security policy: per environment group, which vulnerability findings block a deployment.

TIMBEL_SECURITY_POLICY_FILE (optional) changes the built-in policy:

```yaml
groups:
  prod:
    block: [CRITICAL, HIGH]       # severities that block a deployment
    warn: [MEDIUM]                # severities reported without blocking
    require_fix_available: true   # a finding blocks only once a fixed version exists
    max_age_days: 30              # a `warn` finding open longer than this blocks too
    require_scan: true            # an image that was never scanned blocks
    ignore:
      - id: CVE-2019-14697
        reason: musl's affected function is not reachable from the service
        expires: 2027-01-31       # optional: from the next day the finding counts again
```

Built in: prod blocks CRITICAL findings that have a fix, warns on HIGH and blocks an image
never scanned; staging warns on CRITICAL; dev allows everything. A group the file names keeps
the built-in value of every key it leaves out (a severity it moves to `block` leaves the
built-in `warn`, and the other way round); groups it does not name keep the built-in policy.

`require_scan` is true for prod and false elsewhere: an image never scanned cannot reach prod
(otherwise naming an image the scanner never saw would be a way round the gate), while dev and
staging only report it. The image is looked up by digest whatever the reference: a tag is
resolved through `registry_images`, then the registry (`security/image_ref.py`), so a tag no
one can resolve counts as never scanned. Set `require_scan: false` for prod to only report
unscanned images while the scanner catches up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.warehouse.schema.models import ENVIRONMENT_GROUPS

GROUP_KEYS = ("block", "warn", "require_fix_available", "max_age_days", "require_scan", "ignore")
IGNORE_KEYS = ("id", "reason", "expires")


@dataclass(frozen=True)
class Ignore:
    """A vulnerability a group accepts, why, and until when (inclusive; None: for good)."""

    id: str
    reason: str
    expires: dt.date | None = None

    def active(self, today: dt.date) -> bool:
        return self.expires is None or today <= self.expires


@dataclass(frozen=True)
class GroupPolicy:
    block: tuple[str, ...] = ()
    warn: tuple[str, ...] = ()
    require_fix_available: bool = True
    max_age_days: int | None = None
    require_scan: bool = False
    ignore: tuple[Ignore, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The gate of each environment group; `source` names where it came from."""

    groups: dict[str, GroupPolicy]
    source: str = "built-in"

    def group(self, name: str) -> GroupPolicy:
        if name not in self.groups:
            raise ValueError(
                f"unknown environment group {name!r}; groups are {', '.join(self.groups)}"
            )
        return self.groups[name]


DEFAULT_GROUPS: dict[str, GroupPolicy] = {
    "dev": GroupPolicy(),
    "staging": GroupPolicy(warn=("CRITICAL",)),
    "prod": GroupPolicy(
        block=("CRITICAL",), warn=("HIGH",), require_fix_available=True, require_scan=True
    ),
}


def default_policy() -> Policy:
    """The built-in policy (see the module doc)."""
    return Policy(dict(DEFAULT_GROUPS))


class _Checker:
    """Typed access to the decoded YAML that names the file and key on every error."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, message: str) -> Exception:
        return ValueError(f"{self.name}: {where}: {message}")

    def keys(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r}; keys are {', '.join(allowed)}")
        return value

    def severities(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of severities, got {value!r}")
        found = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or item.upper() not in SEVERITIES:
                raise self.fail(
                    f"{where}[{i}]",
                    f"unknown severity {item!r}; severities are {', '.join(SEVERITIES)}",
                )
            found.append(item.upper())
        return tuple(dict.fromkeys(found))

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {value!r}")
        return value

    def days(self, value: Any, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(where, f"expected a whole number of days (1 or more), got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "expected a non-empty string")
        return value.strip()

    def date(self, value: Any, where: str) -> dt.date | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(where, f"expected a date like 2027-01-31, got {value!r}") from None

    def ignores(self, value: Any, where: str) -> tuple[Ignore, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of {{id, reason, expires}}, got {value!r}")
        found = []
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            entry = self.keys(item, at, IGNORE_KEYS)
            for required in ("id", "reason"):
                if required not in entry:
                    raise self.fail(at, f"missing {required!r}")
            found.append(
                Ignore(
                    id=self.text(entry["id"], f"{at}.id"),
                    reason=self.text(entry["reason"], f"{at}.reason"),
                    expires=self.date(entry.get("expires"), f"{at}.expires"),
                )
            )
        return tuple(found)


def _group(check: _Checker, base: GroupPolicy, value: Any, where: str) -> GroupPolicy:
    entry = check.keys(value if value is not None else {}, where, GROUP_KEYS)
    changes: dict[str, Any] = {}
    for key in ("block", "warn"):
        if key in entry:
            changes[key] = check.severities(entry[key], f"{where}.{key}")
    for key in ("require_fix_available", "require_scan"):
        if key in entry:
            changes[key] = check.flag(entry[key], f"{where}.{key}")
    if "max_age_days" in entry:
        changes["max_age_days"] = check.days(entry["max_age_days"], f"{where}.max_age_days")
    if "ignore" in entry:
        changes["ignore"] = check.ignores(entry["ignore"], f"{where}.ignore")
    both = sorted(set(changes.get("block", ())) & set(changes.get("warn", ())))
    if both:
        raise check.fail(where, f"{', '.join(both)} is in both block and warn; choose one")
    # A severity the file moves to one list leaves the built-in other list.
    for key, other in (("block", "warn"), ("warn", "block")):
        if key in changes and other not in changes:
            changes[other] = tuple(s for s in getattr(base, other) if s not in changes[key])
    return replace(base, **changes)


def parse_policy(data: Any, name: str = "<policy>") -> Policy:
    """The policy of decoded YAML `data` over the built-in one.

    Raises:
        ValueError: an unknown key or group, a bad severity or a value of the wrong type;
            the message names `name` and the key.
    """

    check = _Checker(name)
    top = check.keys(data if data is not None else {}, "(top level)", ("groups",))
    groups = check.keys(top.get("groups") or {}, "groups", ENVIRONMENT_GROUPS)
    merged = dict(DEFAULT_GROUPS)
    for group, value in groups.items():
        merged[group] = _group(check, DEFAULT_GROUPS[group], value, f"groups.{group}")
    return Policy(merged, name)


def load_policy(source: Path | str | dict[str, Any] | None) -> Policy:
    """The policy of a YAML file (TIMBEL_SECURITY_POLICY_FILE), of an already decoded
    mapping, or the built-in one for None."""
    if source is None:
        return default_policy()
    if isinstance(source, dict):
        return parse_policy(source)
    import yaml

    path = Path(source)
    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise ValueError(
            f"TIMBEL_SECURITY_POLICY_FILE: cannot read {path}: {error.strerror}"
        ) from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    return parse_policy(data, str(path))
