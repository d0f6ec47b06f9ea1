"""`timbel sample`: write the whole sample organisation through the ingestion path.

One of the commands the CLI runs in process (the layer below `cli`): it writes to storage, so
it does not live with the sample's clients in `resources/sample/` (clients never import
storage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timbel_dagster.assets.ingestion import ingest_ci, ingest_delivery_history, ingest_directory
from timbel_dagster.resources.sample.organisation import SERVICES
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.store.ingest import Results
from timbel_dagster.warehouse.store.upsert import UpsertResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.resources.sample.source import SampleSource


def load_sample(engine: Engine, source: SampleSource, actor: str) -> Results:
    """Store the sample organisation in one transaction, with the audit event that says so."""

    since, until = source.window
    with engine.begin() as connection:
        results: Results = {}
        results |= ingest_directory(connection, source)
        results |= ingest_ci(connection, source, since, until)
        results |= ingest_delivery_history(connection, source, since, until)
        results |= store_teams(connection, source)
        append_event(
            connection,
            actor=actor,
            action="sample.load",
            target=f"sample organisation seed={source.seed} end={source.end_date}",
            details={
                "seed": source.seed,
                "end_date": source.end_date.isoformat(),
                "written": {table: r.written for table, r in results.items()},
                "offered": {table: r.offered for table, r in results.items()},
            },
        )
    return results


def store_teams(connection: Connection, source: SampleSource) -> Results:
    """The sample's teams (each user's `team`), their members, and which team owns each
    service, so the team check of approvals lets each team's lead decide for it. The
    tenant of a sample service is its team's namespace. Loading again writes nothing."""
    users = source.users()
    teams = sorted({u.team for u in users if u.team})
    _, until = source.window
    added = sum(membership.add_team(connection, team, None, until) for team in teams)
    members = [(u.team, u.name) for u in users if u.team]
    joined = sum(membership.add_member(connection, team, name) for team, name in members)
    owned = 0
    for service in SERVICES:
        before = membership.owner_team(connection, service.name)
        if before != service.team:
            membership.set_owner(connection, service.name, service.team, tenant=service.team)
            owned += 1
    return {
        "teams": UpsertResult("teams", len(teams), added),
        "team_members": UpsertResult("team_members", len(members), joined),
        "service_owners": UpsertResult("service_owners", len(SERVICES), owned),
    }
