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
