"""`cicd/commits`: every commit of the configured repositories with Kamei's change metrics
and the history of the files it changed.

Live mode reads TIMBEL_GIT_REPOSITORIES (local paths, or clone URLs kept as bare clones under
TIMBEL_HOME/git and fetched each run). Per repository: when the non-merge commits reachable
from HEAD are exactly the ones stored, nothing is walked; otherwise the history is walked once
(every metric needs the whole history before a commit) and only the commits not yet stored
are written; a commit stored before migration 0029, without the file history, counts as not
stored, so the first run after the upgrade completes it. Deployments whose commit is in the
repository and that have not been linked yet are linked to the commits they shipped
(`change_deployments.shipped_commits`). Each repository is read first, then written in one
transaction with its audit event; one that cannot be read fails the run, naming it, after
the others are stored.

Sample mode stores the sample organisation's commits, read through the same delivery-history
interface as its deployments (`source='sample'`); configured repositories are not read then,
so that the demo's warehouse holds only the sample.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import (
    OWNERS,
    ingest_commits,
    ingest_each,
    record_ingestion,
    table_metadata,
)
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.changes import git_history
from timbel_dagster.ml.changes.deployments import shipped_commits
from timbel_dagster.ml.changes.metrics import commit_metrics
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.resources.git_repositories import is_git_url, local_copy, repository_key
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.store.upsert import UpsertResult

GIT_SOURCE = "git"  # what rows read from repositories say in `source`


def _sample(context: dg.AssetExecutionContext, warehouse, sources) -> dg.MaterializeResult:
    since, until = sources.window()
    totals, names = ingest_each(
        context,
        warehouse,
        sources.history_sources(warehouse.stored_stages),
        lambda connection, source: ingest_commits(connection, source, since, until),
    )
    metadata = table_metadata(totals, "commits", names)
    metadata["repositories"] = dg.MetadataValue.int(0)
    metadata["note"] = dg.MetadataValue.text(
        "sample mode: the sample organisation's commits (TIMBEL_GIT_REPOSITORIES is read in "
        "live mode)"
    )
    return dg.MaterializeResult(metadata=metadata)


def _pipeline_spelling(connection, name: str) -> str:
    """The repository as a stored pipeline spells it, when one names the same repository
    (so that `candidate_frames` finds the commits of a service's pipelines)."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Pipeline

    if not is_git_url(name):
        return name
    key = repository_key(name)
    for spelling in connection.execute(
        select(Pipeline.repository).where(Pipeline.repository.is_not(None)).distinct()
    ).scalars():
        if repository_key(spelling) == key:
            return spelling
    return name


def _read(context, warehouse, entry: str, home) -> dict:
    """Everything one repository contributes, computed before any write."""
    # lazy: ml.changes.store loads SQLAlchemy; the code location loads without it
    from timbel_dagster.ml.changes.store import linkable_deployments, stored_shas

    repository = local_copy(entry, home)
    # Short reads around the git work: no connection is held while git walks the history
    # (on SQLite every transaction of the write engine holds the write lock).
    with warehouse.engine().connect() as connection:
        name = _pipeline_spelling(connection, repository.name)
        stored = stored_shas(connection, name)
    reachable = (
        int(git_history.git(repository.path, "rev-list", "--no-merges", "--count", "HEAD"))
        if git_history.has_commits(repository.path)
        else 0
    )
    if reachable == len(stored) and (
        not reachable
        or git_history.git(repository.path, "rev-list", "--no-merges", "-n1", "HEAD").strip()
        in stored
    ):
        walked, new = [], []
        known = stored
    else:
        walked = commit_metrics(repository.path)
        new = [c for c in walked if c.sha not in stored]
        known = stored | {c.sha for c in walked}
    with warehouse.engine().connect() as connection:
        deployments, wanted = linkable_deployments(connection, known)
    links = shipped_commits(repository.path, deployments, wanted, known)
    context.log.info(
        f"{name}: {repository.action}, {len(walked)} commits walked, {len(new)} new, "
        f"{len(links)} deployments to link"
    )
    return {"repository": repository, "name": name, "walked": walked, "new": new, "links": links}


@dg.asset(
    key=["cicd", "commits"],
    group_name="cicd",
    kinds={"git", "sql"},
    owners=OWNERS,
    description="One row per commit of the configured repositories, with Kamei's change "
    "metrics and its files' earlier fixes and recent churn; deployments are linked to the "
    "commits they shipped.",
)
def commits(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Store the change metrics of the commits not yet stored, one transaction per repository."""
    # lazy: ml.changes.store loads SQLAlchemy; the code location loads without it
    from timbel_dagster.ml.changes.store import store_commit_metrics, store_deployment_links

    if sources.is_sample():
        return _sample(context, warehouse, sources)
    entries, home = sources.git_sources()
    if not entries:
        context.log.warning(
            "no git repository is configured: set TIMBEL_GIT_REPOSITORIES for change metrics "
            "and lead times"
        )
    walked = written = links_written = 0
    names, failures = [], []
    for entry in entries:
        try:
            found = _read(context, warehouse, entry, home)
        except (SourceError, ValueError) as error:
            context.log.error(str(error))
            failures.append(str(error))
            continue
        with warehouse.begin() as connection:
            stored = store_commit_metrics(connection, found["name"], GIT_SOURCE, found["new"])
            linked = store_deployment_links(connection, found["name"], found["links"])
            offered = len(found["new"])
            record_ingestion(
                connection,
                context,
                GIT_SOURCE,
                {
                    "commits": UpsertResult("commits", offered, stored),
                    "deployment_commits": UpsertResult(
                        "deployment_commits",
                        sum(len(shas) for shas in found["links"].values()),
                        linked,
                    ),
                },
            )
        names.append(found["name"])
        walked, written, links_written = (
            walked + len(found["walked"]),
            written + stored,
            links_written + linked,
        )
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} of {len(entries)} repositories could not be read: "
            + "; ".join(failures),
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(written),
            "rows_written": dg.MetadataValue.int(written),
            "commits_walked": dg.MetadataValue.int(walked),
            "commit_links_written": dg.MetadataValue.int(links_written),
            "repositories": dg.MetadataValue.int(len(names)),
            "source": dg.MetadataValue.text(GIT_SOURCE if names else "none"),
            "repository_names": dg.MetadataValue.text(", ".join(names) or "-"),
        }
    )
