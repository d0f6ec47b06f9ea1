"""`timbel template`: pipeline templates (generate, validate, version, share, apply)."""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import click

from timbel_dagster.cli.common import fail, friendly_errors, print_json
from timbel_dagster.pipeline_templates.generate import generate as generate_text
from timbel_dagster.pipeline_templates.generate import preview as preview_text
from timbel_dagster.pipeline_templates.jenkinsfile_check import GroovyError
from timbel_dagster.pipeline_templates.results import shared_warnings
from timbel_dagster.pipeline_templates.validate import detect_kind, validate_many

KIND_CHOICE = click.Choice(["jenkinsfile", "gitlab-ci"])


@click.group()
def template() -> None:
    """Pipeline templates: Jenkinsfile and .gitlab-ci.yml."""


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--param key=value` options as a dict (later ones win)."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value
    return params


def _echo_result(checked: dict[str, Any], shared: Collection[str] = ()) -> None:
    """One line per problem, `path:line:column: message`, to stderr when stdout is busy;
    the `shared` warnings are left to `_echo_shared`."""
    path = checked["path"]
    for error in checked["errors"]:
        where = f"{error['line']}:{error['column']}:" if error["line"] else ""
        click.echo(f"{path}:{where} error: {error['message']}", err=True)
    for warning in checked["warnings"]:
        if warning not in shared:
            click.echo(f"{path}: warning: {warning}", err=True)
    verdict = "valid" if checked["valid"] else f"{len(checked['errors'])} error(s)"
    click.echo(f"{path}: {verdict} ({checked['kind']}, checked by {checked['checker']})", err=True)


def _echo_shared(shared: dict[str, list[str]]) -> None:
    """A warning several files got, once: `3 files: warning: ...`, then the files."""
    for warning, paths in shared.items():
        click.echo(f"{len(paths)} files: warning: {warning}", err=True)
        for path in paths:
            click.echo(f"  {path}", err=True)


def _validate(paths: list[Path]) -> list[Any]:
    try:
        return validate_many(paths)
    except GroovyError as error:
        fail(str(error))
        raise  # unreachable: fail exits


@template.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def validate_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Check Jenkinsfiles (Groovy compiler + declarative structure) and .gitlab-ci.yml files
    (GitLab's schema + its rules). Exit code 1 when any file is invalid."""
    results = _validate(list(files))
    if as_json:
        print_json(results[0] if len(results) == 1 else results)
    else:
        shared = shared_warnings(results)
        for checked in results:
            _echo_result(dict(checked), shared)
        _echo_shared(shared)
    if not all(r["valid"] for r in results):
        sys.exit(1)


def _analysis(repo: Path | None, analysis_file: Path | None) -> dict[str, Any]:
    import dataclasses
    import importlib
    import json

    if (repo is None) == (analysis_file is None):
        raise ValueError("give exactly one of --repo PATH or --analysis JSON_FILE")
    if analysis_file is not None:
        try:
            loaded = json.loads(analysis_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{analysis_file}: not a JSON analysis: {error}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{analysis_file}: the analysis must be a JSON object")
        return loaded
    assert repo is not None
    try:  # written alongside this command; optional until it lands
        module = importlib.import_module("timbel_dagster.repo_analysis.analysis")
    except ModuleNotFoundError:
        raise ValueError(
            "repository analysis (timbel_dagster.repo_analysis.analysis) is not installed: "
            "pass --analysis JSON_FILE instead of --repo"
        ) from None
    found = module.analyze_repository(repo)
    if dataclasses.is_dataclass(found) and not isinstance(found, type):
        found = dataclasses.asdict(found)
    elif hasattr(found, "to_dict"):
        found = found.to_dict()
    return {"name": repo.resolve().name, **dict(found)}


@template.command()
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--analysis",
    "analysis_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`timbel analyze-repo --json` output, instead of analysing --repo.",
)
@click.option("--kind", type=KIND_CHOICE, required=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--template",
    "template_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Jinja2 template to use instead of the built-in one.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@friendly_errors
def generate(
    repo: Path | None,
    analysis_file: Path | None,
    kind: str,
    params: tuple[str, ...],
    template_file: Path | None,
    output: Path | None,
) -> None:
    """Generate a Jenkinsfile or .gitlab-ci.yml for a repository (build, test, Trivy scan,
    image, deploy), fitted to its build tools. Printed, or written to --output and
    validated (exit code 1 when the written file is invalid)."""

    analysis = _analysis(repo, analysis_file)
    custom = template_file.read_text(encoding="utf-8") if template_file else None
    name = template_file.name if template_file else None
    text = generate_text(analysis, kind, parse_params(params), custom, name)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    (checked,) = _validate([output])
    _echo_result(dict(checked))
    if not checked["valid"]:
        sys.exit(1)


@template.command()
@click.argument("template_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--kind", type=KIND_CHOICE, default=None, help="Default: from the file name.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def preview(template_file: Path, params: tuple[str, ...], kind: str | None, as_json: bool) -> None:
    """Render TEMPLATE_FILE with the parameters and validate the result; the text goes to
    stdout, the verdict to stderr (exit code 1 when invalid)."""

    if kind is None:
        stem = template_file.name.removesuffix(".j2").removesuffix(".jinja")
        try:
            kind = detect_kind(Path(stem), "")
        except ValueError:
            kind = None  # tell from the rendered content
    try:
        text, checked = preview_text(
            template_file.read_text(encoding="utf-8"),
            parse_params(params),
            kind,
            template_file.name,
        )
    except GroovyError as error:
        fail(str(error))
        raise
    if as_json:
        print_json({"text": text, "validation": checked})
    else:
        click.echo(text, nl=False)
        _echo_result(dict(checked))
    if not checked["valid"]:
        sys.exit(1)
