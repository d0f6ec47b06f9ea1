"""Operators' YAML files (alert rules, approval chains, health checks, clusters, the security
policy, user imports, template parameter schemas) are read with the same alias and depth
limits as repository files: a few hundred bytes of anchors must not expand to billions of
nodes in the sensor, the approval flow or the CLI (issue 13, finding 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from timbel_dagster.cli.template_store import _schema
from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.health import load_policies
from timbel_dagster.notify.rules import parse_rules
from timbel_dagster.resources.clusters_file import load_clusters
from timbel_dagster.security.policy_file import load_policy
from timbel_dagster.warehouse.people.users_file import load_users_file


def billion_laughs(levels: int = 9) -> str:
    """Nine anchors of nine aliases each: 9**9 (387 million) nodes in under 400 bytes."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


READERS: dict[str, Callable[[Path], Any]] = {
    "alert rules": lambda path: parse_rules(path.read_text(), str(path)),
    "approval chains": load_chains,
    "health checks": load_policies,
    "clusters": load_clusters,
    "security policy": load_policy,
    "users import": load_users_file,
    "template parameter schema": _schema,
}


def test_the_bomb_is_small() -> None:
    assert len(billion_laughs().encode()) < 500


@pytest.mark.timeout(10)
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_an_alias_bomb_is_refused_with_the_limit_named(
    reader: Callable[[Path], Any], tmp_path: Path
) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(billion_laughs())
    with pytest.raises(Exception, match="excessive aliasing") as refused:
        reader(path)
    assert "\n" not in str(refused.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_nesting_past_the_limit_is_refused(reader: Callable[[Path], Any], tmp_path: Path) -> None:
    path = tmp_path / "file.yaml"
    path.write_text("a: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(Exception, match="nested 201 levels deep, over the limit of 150"):
        reader(path)
