"""Apply a stored template: render one version with parameters, then write it into a
repository or configure a Jenkins Pipeline job with it. Each application is recorded in
`pipeline_template_usage` and audited (`template.apply`) in one transaction with its effect:
when writing the file or calling Jenkins fails, no usage or audit row remains; a written file
is put back as it was if the transaction then fails to commit.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.pipeline_templates import access, jenkins_job, params, records, state
from timbel_dagster.pipeline_templates.store import FILE_NAMES
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.templates import PipelineTemplateUsage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def render_version(
    connection: Connection,
    user: access.Viewer,
    name: str,
    version: int | str | None,
    tag: str | None,
    parameters: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The template, the chosen version and its content rendered with `parameters`.

    Raises:
        LookupError: no such template (visible to `user`), version or tag.
        ValueError: unknown or missing parameters, or the template fails to render.
        TemplateStateError (a ValueError): the template is retired.
    """
    template = access.visible(connection, user, name)
    state.refuse_retired(template, "apply")
    row = records.version_row(connection, template, version, tag)
    what = f"template {name!r} v{row['version']}"
    values = params.resolve(row["parameters"], parameters, what)
    try:
        return template, row, params.render(row["content"], values)
    except params.TemplateRefusedError as error:  # still a SecurityError for the caller
        where = f"line {error.line}: " if error.line else ""
        raise params.TemplateRefusedError(f"{what}: {where}{error}", error.line) from None
    except params.TemplateRenderError as error:
        where = f"line {error.line}: " if error.line else ""
        raise ValueError(f"{what}: {where}{error}") from None


def _record_usage(
    connection: Connection,
    user: access.Viewer,
    template: Mapping[str, Any],
    row: Mapping[str, Any],
    target_kind: str,
    target: str,
    details: Mapping[str, Any],
) -> None:
    from sqlalchemy import insert

    connection.execute(
        insert(PipelineTemplateUsage).values(
            id=uuid.uuid4(),
            template_id=template["id"],
            version=row["version"],
            target_kind=target_kind,
            target=target,
            applied_by=user.name,
            applied_at=dt.datetime.now(dt.UTC),
        )
    )
    append_event(
        connection,
        actor=user.name,
        action="template.apply",
        target=f"template {template['name']}",
        details={"version": row["version"], "target_kind": target_kind, "target": target}
        | dict(details),
    )


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a temporary file next to `path`, flush it to disk and rename it over `path`:
    readers see the old file or the new one, never half of it."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def apply_to_repository(
    engine: Engine,
    actor: str,
    name: str,
    repo_path: str | Path,
    *,
    version: int | str | None = None,
    tag: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Render a version into the repository's `Jenkinsfile` or `.gitlab-ci.yml`.

    An existing file with other content is only replaced with `force`; one with the same
    content is left alone (the application is still recorded).

    Returns:
        {"name", "version", "path", "written", "replaced"}.

    Raises:
        LookupError: no such template/version/tag, or the repository path does not exist.
        ValueError: parameters; a different file exists and `force` is off.
    """
    repository = Path(repo_path).expanduser().resolve()
    if not repository.is_dir():
        raise LookupError(f"{repo_path}: no such directory (the repository to apply to)")
    # Committed by hand: the file is written after the rows, before the commit.
    with engine.connect() as connection:
        user = access.viewer(connection, actor, known=True)
        template, row, text = render_version(connection, user, name, version, tag, parameters)
        path = repository / FILE_NAMES[template["kind"]]
        new = text.encode("utf-8")
        before = path.read_bytes() if path.exists() else None  # kept byte for byte
        if before is not None and before != new and not force:
            raise ValueError(
                f"{path} exists with other content; use force to replace it with template "
                f"{name!r} v{row['version']}"
            )
        written = before != new
        replaced = written and before is not None
        details = {"file": path.name, "written": written, "replaced": replaced}
        _record_usage(connection, user, template, row, "repository", str(repository), details)
        if written:
            mode = path.stat().st_mode & 0o777 if before is not None else 0o644
            write_atomically(path, new, mode)
        try:
            connection.commit()
        except BaseException:
            if written:  # put the file back as it was: nothing recorded, nothing changed
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomically(path, before, mode)
            raise
    return {
        "name": name,
        "version": row["version"],
        "path": str(path),
        "written": written,
        "replaced": replaced,
    }


def apply_to_jenkins(
    engine: Engine,
    actor: str,
    name: str,
    jenkins: Any,
    job_name: str,
    *,
    repo_url: str | None = None,
    branch: str = "main",
    credentials_id: str | None = None,
    script_path: str = "Jenkinsfile",
    version: int | str | None = None,
    tag: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create or update a Jenkins Pipeline job from a Jenkinsfile template.

    With `repo_url` the job reads `script_path` from that repository's `branch` (commit the
    rendered template there; it is returned as `content`); without, the rendered script is
    the job's inline definition.

    Args:
        jenkins: a python-jenkins `Jenkins` client (see `jenkins_job.jenkins_client`).

    Returns:
        {"name", "version", "job", "created", "definition" ("scm"|"inline"), "content"}.

    Raises:
        ValueError: not a Jenkinsfile template, a bad job name, parameters.
        SourceError: Jenkins refused or failed; nothing is recorded then.
    """
    jenkins_job.check_job_name(job_name)
    with engine.begin() as connection:
        user = access.viewer(connection, actor, known=True)
        template, row, text = render_version(connection, user, name, version, tag, parameters)
        if template["kind"] != "jenkinsfile":
            raise ValueError(f"template {name!r} is a {template['kind']}, not a Jenkinsfile")
        config = jenkins_job.pipeline_config(
            f"Pipeline from template {name} v{row['version']} (applied by {user.name} with timbel)",
            script=None if repo_url else text,
            repo_url=repo_url,
            branch=branch,
            credentials_id=credentials_id,
            script_path=script_path,
        )
        definition = "scm" if repo_url else "inline"
        details = {
            "server": getattr(jenkins, "server", None),
            "definition": definition,
            "repo_url": repo_url,
            "branch": branch if repo_url else None,
        }
        _record_usage(connection, user, template, row, "jenkins", job_name, details)
        # Last, inside the transaction: when Jenkins fails, the usage rolls back with it.
        created = jenkins_job.upsert_job(jenkins, job_name, config)
    return {
        "name": name,
        "version": row["version"],
        "job": job_name,
        "created": created,
        "definition": definition,
        "content": text,
    }
