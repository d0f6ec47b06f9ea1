"""The environment a child process starts with: the variables it needs, nothing else.

A child started without `env=` inherits all of Timbel's environment: the CI tokens, the
database URL, the secret key. So every program Timbel runs (the Groovy compiler's JVM,
Trivy, git) is given `child_environment(...)`: the variables its allow-list names, copied
from this process's environment, plus the values its caller sets. Besides `settings/`, this
is the one place that reads the environment, and it does so only on a child's behalf.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# How a program reaches the network through a proxy. curl (and so git) reads only the
# lower-case `http_proxy`; Go (Trivy) and most other tools read either spelling.
PROXIES = frozenset(
    {
        *(f"{scheme}_proxy" for scheme in ("http", "https", "no", "all")),
        *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "NO", "ALL")),
    }
)
# Where OpenSSL-based programs (and Go) find the CA certificates of an in-house CA.
CA_CERTIFICATES = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR"})


def child_environment(
    allow: Iterable[str] = (),
    *,
    prefixes: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment for a child process: this process's variables that `allow`
    names or that start with one of `prefixes`, then `extra` on top (it wins).

    Args:
        allow: exact variable names to copy when set (case matters).
        prefixes: name prefixes to copy, e.g. `TRIVY_` for a program's own options.
        extra: values the caller sets, e.g. a temporary HOME or git's credentials.
    """
    names = frozenset(allow)
    starts = tuple(prefixes)
    environment = {
        name: value
        for name, value in os.environ.items()
        if name in names or name.startswith(starts)
    }
    return environment | dict(extra or {})


# What git may see of Timbel's environment: where its programs are, the user's git and ssh
# configuration (HOME) and ssh agent, the locale, proxies and CA certificates. Not the CI
# tokens or the database URL, and not GIT_* wholesale: GIT_DIR, GIT_WORK_TREE or
# GIT_INDEX_FILE would point git at another repository, GIT_CONFIG_* would add configuration,
# GIT_TRACE_CURL would log the credentials. GIT_SSH_COMMAND is the operator's choice of ssh
# (a deploy key) and replaces the `ssh -o BatchMode=yes` Timbel passes as core.sshCommand;
# GIT_SSH is not passed, since git prefers that core.sshCommand to it.
GIT_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "XDG_CONFIG_HOME",
        "LANG",
        "LANGUAGE",
        "SSH_AUTH_SOCK",
        "GIT_SSH_COMMAND",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        # An operator's deliberate setting for an in-house server; git honoured it before.
        "GIT_SSL_NO_VERIFY",
        *CA_CERTIFICATES,
        *PROXIES,
    }
)


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every git Timbel runs (clones, fetches, and the local reads of a
    repository's history): `GIT_VARIABLES` and LC_* of this process's, no prompts, then
    `extra` (e.g. the credential helper's variables) on top."""
    return child_environment(
        GIT_VARIABLES, prefixes=("LC_",), extra={"GIT_TERMINAL_PROMPT": "0", **(extra or {})}
    )
