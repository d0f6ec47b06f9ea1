"""The `timbel` command: a thin layer over the functions the assets use.

Every command takes `--json` where it prints data. Errors are one line on stderr and exit
code 2; state-changing commands append an audit event in the same transaction as the change.
"""

from __future__ import annotations

import click

from timbel_dagster.cli import ci, db, executions, logs, organisation


@click.group()
@click.version_option(package_name="timbel-dagster")
def main() -> None:
    """Timbel: delivery operations on Dagster."""


main.add_command(db.db)
main.add_command(organisation.sample)
main.add_command(organisation.demo)
main.add_command(ci.ingest)
main.add_command(executions.executions)
main.add_command(logs.logs)
main.add_command(logs.build)

if __name__ == "__main__":
    main()
