"""Approval chains per environment group: which roles approve a deployment, in order.

The requester is the first link of every chain (a developer asks); the chain lists who must
approve after them. Built in: dev needs nobody, staging a team lead, prod a team lead and
then operations. TIMBEL_APPROVAL_CHAINS_FILE replaces them:

```yaml
chains:
  dev: []
  staging: [team_lead]
  prod: [team_lead, operations]
```
"""

from __future__ import annotations

from pathlib import Path

from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.warehouse.schema.models import ENVIRONMENT_GROUPS

APPROVER_ROLES = ("developer", "team_lead", "operations", "admin")
DEFAULT_CHAINS: dict[str, tuple[str, ...]] = {
    "dev": (),
    "staging": ("team_lead",),
    "prod": ("team_lead", "operations"),
}


class ChainsError(ValueError):
    """The approval chains file is wrong; the message names the file and the group."""


def load_chains(path: Path | None) -> dict[str, tuple[str, ...]]:
    """The chains of `path`, or the built-in ones when it is None."""
    if path is None:
        return dict(DEFAULT_CHAINS)
    import yaml

    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise ChainsError(
            f"TIMBEL_APPROVAL_CHAINS_FILE: cannot read {path}: {error.strerror}"
        ) from None
    except yaml.YAMLError as error:
        raise ChainsError(f"{path}: not valid YAML: {error}") from None
    chains = data.get("chains") if isinstance(data, dict) else None
    if not isinstance(chains, dict):
        raise ChainsError(f"{path}: expected a top-level 'chains:' mapping")
    found: dict[str, tuple[str, ...]] = {}
    for group, roles in chains.items():
        if group not in ENVIRONMENT_GROUPS:
            raise ChainsError(
                f"{path}: unknown environment group {group!r}; groups are "
                f"{', '.join(ENVIRONMENT_GROUPS)}"
            )
        if not isinstance(roles, list) or any(r not in APPROVER_ROLES for r in roles):
            raise ChainsError(
                f"{path}: chains.{group} must be a list of roles from "
                f"{', '.join(APPROVER_ROLES)}, not {roles!r}"
            )
        found[group] = tuple(roles)
    missing = sorted(set(ENVIRONMENT_GROUPS) - set(found))
    if missing:
        raise ChainsError(f"{path}: no chain for {', '.join(missing)}")
    return found
