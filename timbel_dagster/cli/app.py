"""The `timbel` command: a thin layer over the functions the assets use.

Every command takes `--json` where it prints data. Errors are one line on stderr and exit
code 2; state-changing commands append an audit event in the same transaction as the change.
"""

from __future__ import annotations

import warnings

import click

from timbel_dagster.cli import (
    access,
    alerts,
    api_serve,
    audit,
    autoscale,
    backup,
    backup_pitr,
    ci,
    clusters,
    db,
    deploy,
    dora,
    executions,
    logs,
    metrics,
    ml,
    notify,
    organisation,
    risk,
    security,
    slo,
    teams,
    template_store,
    templates,
    tenants,
    tokens,
    users,
)
from timbel_dagster.cli.common import DEBUG_KEY

for command in template_store.COMMANDS:
    templates.template.add_command(command)
for command in backup_pitr.COMMANDS:
    backup.backup.add_command(command)


@click.group()
@click.version_option(package_name="timbel-dagster")
@click.option(
    "--debug", is_flag=True, help="Print the traceback of an error, not only its one line."
)
@click.pass_context
def main(context: click.Context, debug: bool) -> None:
    """Timbel: delivery operations on Dagster."""
    context.meta[DEBUG_KEY] = debug
    # Dagster flags beta parameters (backfill policies, owners) at definition time; that is
    # for the code's authors, not for people running a command.
    warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")


main.add_command(db.db)
main.add_command(organisation.sample)
main.add_command(organisation.demo)
main.add_command(ci.ingest)
main.add_command(executions.executions)
main.add_command(logs.logs)
main.add_command(logs.build)
main.add_command(metrics.metrics)
main.add_command(clusters.clusters)
main.add_command(deploy.deploy)
main.add_command(dora.dora)
main.add_command(tenants.tenant)
main.add_command(audit.audit)
main.add_command(backup.backup)
main.add_command(autoscale.autoscale)
main.add_command(alerts.alerts)
main.add_command(slo.slo)
main.add_command(notify.notify)
main.add_command(ml.ml)
main.add_command(risk.risk)
main.add_command(ml.analyze_changes)
main.add_command(security.scan)
main.add_command(security.analyze_repo)
main.add_command(templates.template)
main.add_command(users.users)
main.add_command(tokens.token)
main.add_command(teams.team)
main.add_command(access.access)
main.add_command(api_serve.api)

if __name__ == "__main__":
    main()
