"""Console logs for the sample organisation's builds: made up from each build's own record.

Only ever stored for `source='sample'` executions. Deterministic: the same execution always
gets the same text.
"""

from __future__ import annotations

from timbel_dagster.records.delivery import ExecutionRecord


def sample_log(execution: ExecutionRecord) -> str:
    """A console log in Jenkins' style that says what the build record says."""
    lines = [
        f"Started by {execution.triggered_by or 'an SCM change'}",
        f"Checking out Revision {execution.commit_sha} ({execution.branch})",
    ]
    for stage in execution.stages:
        block = f"{stage.parent_name} > " if stage.parent_name else ""
        lines.append(f"[Pipeline] {{ ({block}{stage.name})")
        if stage.status == "skipped":
            lines.append(f'Stage "{stage.name}" skipped due to earlier failure(s)')
        elif stage.status == "failed":
            lines += [
                f"+ make {stage.name}",
                f"ERROR: {stage.name} exited with code 1 after {stage.duration or 0:.0f}s",
            ]
            if "test" in stage.name:
                lines.append("Tests run: 412, Failures: 3, Errors: 0, Skipped: 2")
        else:
            lines.append(f"+ make {stage.name}")
        lines.append("[Pipeline] }")
    lines.append(f"Finished: {execution.status.upper()}")
    return "\n".join(lines) + "\n"
