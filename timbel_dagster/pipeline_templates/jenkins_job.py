"""A Jenkins Pipeline job for a template: its `config.xml`, and creating or updating it.

The job either reads its Jenkinsfile from a Git repository (`CpsScmFlowDefinition`: the
rendered template must be committed there, e.g. with `apply_to_repository`) or carries the
rendered script inline (`CpsFlowDefinition`, Groovy sandbox on). The XML is built with
ElementTree, so the script and every value are escaped, never pasted into markup.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceError

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings

SYSTEM = "jenkins"
SCM_DEFINITION = "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
INLINE_DEFINITION = "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
# Jenkins.checkGoodName refuses these in an item name; "/" separates folders here.
_UNSAFE = set("?*\\%!@#$^&|<>[]:;")
# Characters XML 1.0 cannot carry at all (ElementTree would write them unescaped).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def check_job_name(job_name: str) -> None:
    """Raises ValueError when Jenkins would refuse the (folder/)job name."""
    segments = job_name.split("/")
    if not job_name or any(not s.strip() or s in (".", "..") for s in segments):
        raise ValueError(f"Jenkins job name {job_name!r}: empty or '.'/'..' path segment")
    bad = sorted({c for c in job_name if c in _UNSAFE})
    if bad:
        raise ValueError(f"Jenkins job name {job_name!r}: Jenkins refuses {''.join(bad)!r}")


def _text(parent: ET.Element, tag: str, value: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if value is not None:
        if _NOT_XML.search(value):
            raise ValueError(f"{tag}: contains control characters XML cannot carry")
        element.text = value.replace("\r\n", "\n")
    return element


def branch_spec(branch: str) -> str:
    """`main` -> `*/main` (any remote); refs and patterns are kept as given."""
    return branch if branch.startswith("refs/") or "*" in branch else f"*/{branch}"


def pipeline_config(
    description: str,
    *,
    script: str | None = None,
    repo_url: str | None = None,
    branch: str = "main",
    credentials_id: str | None = None,
    script_path: str = "Jenkinsfile",
) -> str:
    """The `config.xml` of a Pipeline job (`flow-definition`): from SCM when `repo_url` is
    given, else with `script` inline."""
    root = ET.Element("flow-definition", {"plugin": "workflow-job"})
    _text(root, "description", description)
    _text(root, "keepDependencies", "false")
    ET.SubElement(root, "properties")
    if repo_url:
        definition = _text(
            root, "definition", **{"class": SCM_DEFINITION, "plugin": "workflow-cps"}
        )
        scm = _text(definition, "scm", **{"class": "hudson.plugins.git.GitSCM", "plugin": "git"})
        _text(scm, "configVersion", "2")
        remote = _text(_text(scm, "userRemoteConfigs"), "hudson.plugins.git.UserRemoteConfig")
        _text(remote, "url", repo_url)
        if credentials_id:
            _text(remote, "credentialsId", credentials_id)
        spec = _text(_text(scm, "branches"), "hudson.plugins.git.BranchSpec")
        _text(spec, "name", branch_spec(branch))
        _text(scm, "doGenerateSubmoduleConfigurations", "false")
        _text(scm, "submoduleCfg", **{"class": "empty-list"})
        ET.SubElement(scm, "extensions")
        _text(definition, "scriptPath", script_path)
        _text(definition, "lightweight", "true")
    else:
        if script is None:
            raise ValueError("an inline Pipeline job needs its script")
        definition = _text(
            root, "definition", **{"class": INLINE_DEFINITION, "plugin": "workflow-cps"}
        )
        _text(definition, "script", script)
        _text(definition, "sandbox", "true")
    ET.SubElement(root, "triggers")
    _text(root, "disabled", "false")
    ET.indent(root)
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


def jenkins_client(settings: Settings) -> Any:
    """A python-jenkins client on the configured server (JENKINS_URL, JENKINS_USER,
    JENKINS_TOKEN, JENKINS_TIMEOUT_SECONDS: the settings the Jenkins resource uses)."""
    import jenkins

    if not settings.jenkins_url:
        raise SourceNotConfiguredError(
            "Jenkins is not configured: set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN"
        )
    token = settings.jenkins_token.get_secret_value() if settings.jenkins_token else None
    return jenkins.Jenkins(
        str(settings.jenkins_url).rstrip("/") + "/",
        username=settings.jenkins_user,
        password=token,
        timeout=settings.jenkins_timeout_seconds,
    )


def upsert_job(client: Any, job_name: str, config_xml: str) -> bool:
    """Create the job, or reconfigure it when it exists; True when it was created.

    Raises:
        SourceError: Jenkins refused or failed (naming the job and its answer).
    """
    import jenkins
    import requests

    try:
        if client.job_exists(job_name):
            client.reconfig_job(job_name, config_xml)
            return False
        client.create_job(job_name, config_xml)
        return True
    except requests.HTTPError as error:
        answer = error.response.text.strip()[:300] if error.response is not None else ""
        status = error.response.status_code if error.response is not None else "?"
        raise SourceError(SYSTEM, job_name, f"HTTP {status}: {answer or error}") from None
    except (jenkins.JenkinsException, requests.RequestException) as error:
        raise SourceError(SYSTEM, job_name, str(error).splitlines()[0]) from None
