"""What counts as a secret by its name, and how it is hidden: `***` in its place.

Neither Jenkins nor GitLab can tell Timbel which build parameter is a secret (Jenkins masks
a `PasswordParameterValue` by its type, GitLab a variable by its `masked` flag), so Timbel
goes by the name, as log-masking tools do: a name is secret when it contains `password`,
`passwd`, `passphrase`, `secret`, `token`, `credential`, `apikey`, `private`, `oauth`,
`authorization` or `signature`, or has a word `key`, `pass`, `pwd`, `auth`, `pat`, `sig`
(an Azure SAS URL's `sig=`), `cookie` or `session` (words split on `_`, `-`, `.`, spaces
and camelCase: `API_KEY`, `apiKey`, `DB_PASS`,
`BASIC_AUTH` are secret; `MONKEY`, `AUTHOR`, `BYPASS` are not). Case does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
_CONTAINS = (
    "password", "passwd", "passphrase", "secret", "token", "credential", "apikey", "private",
    "oauth", "authorization", "signature",
)  # fmt: skip
_WORDS = frozenset({"key", "pass", "pwd", "auth", "pat", "sig", "cookie", "session"})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")


def looks_secret(name: str) -> bool:
    """Whether a parameter, variable or query-parameter name names a secret."""
    lowered = name.lower()
    if any(part in lowered for part in _CONTAINS):
        return True
    return any(word.lower() in _WORDS for word in _WORD.findall(name))


def redact_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """`parameters` with the value of every secret-looking name replaced by `***`."""
    return {k: MASK if looks_secret(k) else v for k, v in parameters.items()}


def secret_values(parameters: Mapping[str, str]) -> list[str]:
    """The values of the secret-looking names (what `mask` should hide), longest first."""
    values = {v for k, v in parameters.items() if v and looks_secret(k)}
    return sorted(values, key=len, reverse=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***` (longest first, so a
    secret containing another is hidden whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
