"""`timbel template rate | reviews | marketplace | apply`: the marketplace of stored templates
and applying them to a repository or a Jenkins job (listed in `template_store.COMMANDS`)."""

from __future__ import annotations

from pathlib import Path

import click

from timbel_dagster.cli.common import (
    connect,
    friendly_errors,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.pipeline_templates import marketplace
from timbel_dagster.pipeline_templates.jenkins_job import jenkins_client

AS_HELP = "Act as this user (default TIMBEL_USER); changes need a user of the users table."


def _as(as_user: str | None) -> str:
    return as_user or settings_or_exit().timbel_user


def parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--param KEY=VALUE` options as a dict (later ones win)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        values[key.strip()] = value
    return values


@click.command()
@click.argument("name")
@click.argument("stars", type=int)
@click.option("--review", default="", help="What you think of it.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def rate(name: str, stars: int, review: str, as_user: str | None, as_json: bool) -> None:
    """Rate template NAME with 1-5 STARS (rating again replaces your rating)."""

    settings, engine = writable_engine()
    made = marketplace.rate(engine, as_user or settings.timbel_user, name, stars, review)
    if as_json:
        print_json(made)
    else:
        was = f" (was {made['previous_stars']})" if made["previous_stars"] else ""
        click.echo(f"{name}: rated {stars}/5 by {made['user']}{was}")


@click.command()
@click.argument("name")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def reviews(name: str, as_user: str | None, as_json: bool) -> None:
    """The ratings and reviews of template NAME, newest first."""

    with connect() as connection:
        found = marketplace.reviews(connection, _as(as_user), name)
    if as_json:
        print_json(found)
        return
    for row in found:
        stars = "*" * row["stars"] + "." * (5 - row["stars"])
        click.echo(f"{stars} {row['user']:<16} {row['created_at']:%Y-%m-%d} {row['review']}")


@click.command("marketplace")
@click.option("--kind", type=click.Choice(["jenkinsfile", "gitlab-ci"]), default=None)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--all", "include_retired", is_flag=True, help="Retired templates too.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def marketplace_command(
    kind: str | None, limit: int, include_retired: bool, as_user: str | None, as_json: bool
) -> None:
    """The templates you can see, best first: Bayesian-averaged stars plus recent adoption.
    Retired templates are left out unless --all (then marked `retired`)."""

    with connect() as connection:
        rows = marketplace.ranking(
            connection, _as(as_user), kind, limit, include_retired=include_retired
        )
    if as_json:
        print_json(rows)
        return
    click.echo(
        f"{'TEMPLATE':<28} {'KIND':<12} {'VISIBILITY':<10} {'STARS':>5} {'N':>4} "
        f"{'BAYES':>5} {'USES':>4} {'SCORE':>6}"
    )
    for r in rows:
        mean = f"{r['rating_mean']:.2f}" if r["rating_mean"] is not None else "-"
        click.echo(
            f"{r['name']:<28} {r['kind']:<12} {r['visibility']:<10} {mean:>5} "
            f"{r['n_ratings']:>4} {r['bayesian']:>5.2f} {r['uses_90d']:>4} {r['score']:>6.3f}"
            + ("  retired" if r["retired_at"] is not None else "")
        )


@click.command()
@click.argument("name")
@click.option("--repo", "repo", type=click.Path(path_type=Path), help="Write into this repo.")
@click.option("--jenkins-job", default=None, help="Create or update this Jenkins Pipeline job.")
@click.option("--repo-url", default=None, help="Jenkins: read the Jenkinsfile from this Git URL.")
@click.option("--branch", default="main", show_default=True, help="Jenkins: branch to build.")
@click.option("--credentials-id", default=None, help="Jenkins: credentials for the Git URL.")
@click.option("--version", "version", type=int, default=None, help="Default: the latest.")
@click.option("--tag", default=None, help="Apply the version this tag points at.")
@click.option("--param", "params", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--force", is_flag=True, help="Replace a different existing pipeline file.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def apply(
    name: str,
    repo: Path | None,
    jenkins_job: str | None,
    repo_url: str | None,
    branch: str,
    credentials_id: str | None,
    version: int | None,
    tag: str | None,
    params: tuple[str, ...],
    force: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Render template NAME into a repository (--repo) or a Jenkins job (--jenkins-job)."""
    # lazy: pipeline_templates loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.pipeline_templates import apply as applying

    if (repo is None) == (jenkins_job is None):
        raise click.UsageError("give exactly one of --repo PATH and --jenkins-job NAME")
    if repo is not None and (repo_url or credentials_id):
        raise click.UsageError("--repo-url and --credentials-id go with --jenkins-job")
    values = parse_pairs(params)
    settings, engine = writable_engine()
    actor = as_user or settings.timbel_user
    if repo is not None:
        made = applying.apply_to_repository(
            engine, actor, name, repo, version=version, tag=tag, parameters=values, force=force
        )
        done = "written" if made["written"] else "already up to date"
        line = f"{made['path']}: {done} from {name} v{made['version']}"
    else:
        assert jenkins_job is not None
        made = applying.apply_to_jenkins(
            engine,
            actor,
            name,
            jenkins_client(settings),
            jenkins_job,
            repo_url=repo_url,
            branch=branch,
            credentials_id=credentials_id,
            version=version,
            tag=tag,
            parameters=values,
        )
        done = "created" if made["created"] else "updated"
        line = f"Jenkins job {jenkins_job}: {done} from {name} v{made['version']}"
        if repo_url:
            line += f" (reads Jenkinsfile from {repo_url} {branch}: commit the rendered file)"
    if as_json:
        print_json(made)
    else:
        click.echo(line)


COMMANDS = (rate, reviews, marketplace_command, apply)
