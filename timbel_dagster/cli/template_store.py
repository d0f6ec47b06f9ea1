"""`timbel template publish | versions | show | diff | rollback | tag | share | visibility |
retire | restore | rate | reviews | marketplace | apply`: stored templates in the warehouse.

`cli/app.py` adds `COMMANDS` to the `template` group. Reading commands show only what the
`--as` user may see; changing ones audit the change in the same transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from timbel_dagster.cli import template_market, template_retire
from timbel_dagster.cli.common import (
    connect,
    fail,
    friendly_errors,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.pipeline_templates import access
from timbel_dagster.pipeline_templates.validate import detect_kind
from timbel_dagster.safe_yaml import load_yaml

AS_HELP = "Act as this user (default TIMBEL_USER); changes need a user of the users table."
KINDS = click.Choice(["jenkinsfile", "gitlab-ci"])
VISIBILITY = click.Choice(["private", "team", "public"])


def _as(as_user: str | None) -> str:
    return as_user or settings_or_exit().timbel_user


def _version_line(v: dict[str, Any]) -> str:
    tags = f" [{', '.join(v['tags'])}]" if v.get("tags") else ""
    rollback = f" (rollback of v{v['rollback_of_version']})" if v["rollback_of_version"] else ""
    return (
        f"v{v['version']:<4} {v['created_at']:%Y-%m-%d %H:%M} {v['created_by']:<16} "
        f"{v['content_sha256'][:12]}{tags}{rollback} {v['release_notes']}".rstrip()
    )


def _schema(path: Path | None) -> dict[str, Any] | None:
    import yaml

    if path is None:
        return None
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not YAML or JSON: {str(error).splitlines()[0]}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{path}: must map parameter names to {{default, description, required}}")
    return loaded


@click.command()
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=KINDS, default=None, help="Default: from the file name/content.")
@click.option(
    "--parameters",
    "parameters_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON file: parameter name -> {default, description, required}.",
)
@click.option("--notes", default="", help="Release notes of this version.")
@click.option("--visibility", type=VISIBILITY, default=None, help="Default: private (new).")
@click.option("--team", default=None, help="The team of a team-visible template.")
@click.option("--description", default=None, help="What the template is for (new templates).")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def publish(
    name: str,
    file: Path,
    kind: str | None,
    parameters_file: Path | None,
    notes: str,
    visibility: str | None,
    team: str | None,
    description: str | None,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Validate FILE and publish it as the next version of template NAME."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    content = file.read_text(encoding="utf-8")
    kind = kind or detect_kind(file, content)
    schema = _schema(parameters_file)
    settings, engine = writable_engine()
    try:
        version = store.publish(
            engine,
            as_user or settings.timbel_user,
            name,
            kind,
            content,
            parameters=schema,
            release_notes=notes,
            visibility=visibility,
            team=team,
            description=description,
        )
    except store.TemplateInvalidError as error:
        for problem in error.errors:
            where = f"{problem['line']}:{problem['column'] or 1}:" if problem["line"] else ""
            click.echo(f"{file}:{where} error: {problem['message']}", err=True)
        fail(f"template {name!r} not published: {len(error.errors)} error(s) in {file}")
    if as_json:
        print_json({k: v for k, v in version.items() if k != "content"})
        return
    for warning in version["warnings"]:
        click.echo(f"{file}: warning: {warning}", err=True)
    if version["unchanged"]:
        click.echo(f"{name} v{version['version']}: unchanged (same content as the latest version)")
    else:
        click.echo(f"{name} v{version['version']} published ({version['visibility']})")


@click.command()
@click.argument("name")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def versions(name: str, as_user: str | None, as_json: bool) -> None:
    """The versions of template NAME, oldest first."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    with connect() as connection:
        found = store.versions(connection, _as(as_user), name)
    if as_json:
        print_json(found)
        return
    for version in found:
        click.echo(_version_line(version))


@click.command()
@click.argument("name")
@click.argument("ref", required=False, metavar="[VERSION|TAG]")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def show(name: str, ref: str | None, as_user: str | None, as_json: bool) -> None:
    """One version of template NAME (default the latest) with its content."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    with connect() as connection:
        version = store.show(connection, _as(as_user), name, ref)
    if as_json:
        print_json(version)
        return
    click.echo(f"# {name} ({version['kind']}, {version['visibility']}, owner {version['owner']})")
    click.echo(f"# {_version_line(version)}")
    if version["retired_at"] is not None:
        why = f": {version['retired_reason']}" if version["retired_reason"] else ""
        click.echo(f"# RETIRED {version['retired_at']:%Y-%m-%d} by {version['retired_by']}{why}")
    for parameter, spec in version["parameters"].items():
        need = "required" if spec["required"] else f"default {spec['default']!r}"
        click.echo(f"# --param {parameter}=...  {need}  {spec['description']}".rstrip())
    click.echo(version["content"], nl=not version["content"].endswith("\n"))


@click.command()
@click.argument("name")
@click.argument("a", metavar="FROM")
@click.argument("b", metavar="TO")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@friendly_errors
def diff(name: str, a: str, b: str, as_user: str | None) -> None:
    """Unified diff of template NAME between versions (or tags) FROM and TO."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    with connect() as connection:
        click.echo(store.diff(connection, _as(as_user), name, a, b), nl=False)


@click.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--notes", default="", help="Release notes (default: rollback to vN).")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def rollback(name: str, version: int, notes: str, as_user: str | None, as_json: bool) -> None:
    """Publish VERSION's content again as a new version of template NAME."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    settings, engine = writable_engine()
    made = store.rollback(engine, as_user or settings.timbel_user, name, version, notes)
    if as_json:
        print_json({k: v for k, v in made.items() if k != "content"})
    elif made["unchanged"]:
        click.echo(f"{name} v{made['version']} already has v{version}'s content: unchanged")
    else:
        click.echo(f"{name} v{made['version']} published: the content of v{version}")


def _changed(result: dict[str, Any], as_json: bool, done: str, same: str) -> None:
    if as_json:
        print_json(result)
    else:
        click.echo(same if result["unchanged"] else done)


@click.command("tag")
@click.argument("name")
@click.argument("tag_name", metavar="TAG")
@click.argument("version", type=int)
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def tag_command(name: str, tag_name: str, version: int, as_user: str | None, as_json: bool):
    """Point TAG of template NAME at VERSION (moving it if it pointed elsewhere)."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import store

    settings, engine = writable_engine()
    made = store.tag(engine, as_user or settings.timbel_user, name, tag_name, version)
    moved = f" (was v{made['previous_version']})" if made["previous_version"] else ""
    done = f"{name}: {tag_name} -> v{version}{moved}"
    _changed(made, as_json, done, f"{name}: {tag_name} already points at v{version}")


@click.command()
@click.argument("name")
@click.argument("grantee")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def share(name: str, grantee: str, as_user: str | None, as_json: bool) -> None:
    """Let GRANTEE (a user or team; user:NAME / team:NAME when ambiguous) see template NAME."""

    settings, engine = writable_engine()
    made = access.share(engine, as_user or settings.timbel_user, name, grantee)
    who = f"{made['grantee_kind']} {made['grantee']}"
    _changed(made, as_json, f"{name}: shared with {who}", f"{name}: already shared with {who}")


@click.command()
@click.argument("name")
@click.argument("visibility", type=VISIBILITY)
@click.option("--team", default=None, help="For team: whose members see it (default: kept).")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def visibility(
    name: str, visibility: str, team: str | None, as_user: str | None, as_json: bool
) -> None:
    """Make template NAME private, team-visible or public."""

    settings, engine = writable_engine()
    made = access.set_visibility(engine, as_user or settings.timbel_user, name, visibility, team)
    shown = f"{visibility} ({made['team']})" if visibility == "team" else visibility
    _changed(made, as_json, f"{name}: now {shown}", f"{name}: already {shown}")


COMMANDS = (
    publish,
    versions,
    show,
    diff,
    rollback,
    tag_command,
    share,
    visibility,
    *template_retire.COMMANDS,
    *template_market.COMMANDS,
)
