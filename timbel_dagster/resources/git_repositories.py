"""Local copies of the git repositories whose commits Timbel reads (TIMBEL_GIT_REPOSITORIES).

A local path (a work tree, a directory inside one, or a bare repository) is read where it is.
A clone URL is cloned bare into `<home>/git/<name>-<hash>.git` on first use and fetched on
later runs (`git fetch --prune --tags`: only new objects cross the network); the clone is
made in a scratch directory and renamed into place, so a failed first clone leaves nothing
behind. Branches are fetched onto themselves (`+refs/heads/*:refs/heads/*`), so HEAD, the
remote's default branch at clone time, moves with the remote. The clone's `origin` holds
the URL without credentials; fetches name that URL and get the credentials again.

Names: the warehouse knows a repository by its clone URL without credentials (`public_url`;
a local path by its `origin` URL when it has one, else its absolute path), which is how
GitLab pipelines name their repository (`http_url_to_repo`), so that commits, pipelines and
deployments meet. Credentials in a URL are used to clone and fetch but never stored, logged
or shown, nor put on git's command line (`ps` shows it to every user): `run_git` hands them
to git through git's own environment.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from timbel_dagster.child_env import git_environment
from timbel_dagster.redaction import MASK, looks_secret, mask
from timbel_dagster.resources.errors import SourceError, SourceNotFoundError

SYSTEM = "git"
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>.*)$")
# `ext::` could run commands; a prompt for credentials would hang a run.
_SAFE = (
    "-c", "protocol.ext.allow=never", "-c", "core.askPass=true",
    "-c", "core.sshCommand=ssh -o BatchMode=yes", "-c", "credential.interactive=never",
)  # fmt: skip
_BRANCHES = "+refs/heads/*:refs/heads/*"
# Linear on any text (git relays what the server sends): a scheme starts where no scheme
# character precedes it and is at most 32 characters long.
_URL_IN_TEXT = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://[^\s'\"]+", re.IGNORECASE)
# A URL's credentials reach git in these variables of git's own environment, read by this
# credential helper (git runs `!...` helpers through sh with the action as $1); the empty
# helper before it drops the user's helpers, which would otherwise store the secret.
_USER_VARIABLE, _PASSWORD_VARIABLE = "TIMBEL_GIT_USERNAME", "TIMBEL_GIT_PASSWORD"
_HELPER = (
    "credential.helper=!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' "
    f'"${_USER_VARIABLE}" "${_PASSWORD_VARIABLE}"; }}; f'
)


@dataclass(frozen=True)
class GitRepository:
    """A configured repository and the local copy its history is read from.

    Attributes:
        name: what its rows say in `commits.repository` (no credentials).
        path: the local repository (the path given, or the bare clone of a URL).
        url: the clone URL without credentials, or None for a local path.
        action: `read` (local path), `cloned` or `fetched`.
    """

    name: str
    path: Path
    url: str | None
    action: str


def is_git_url(entry: str) -> bool:
    """Whether `entry` is a URL (`https://`, `ssh://`, `file://`, `git@host:path`)."""
    return bool(_URL.match(entry))


def public_url(url: str) -> str:
    """`url` without the credentials it may carry, fit to store, log and show.

    An http(s) URL loses its whole user info (a token may be the user name: `oauth2:TOKEN@`,
    `TOKEN@`), any other URL its password (`ssh://git@host` keeps `git`); query parameters
    whose names look secret (`private_token`, `access_token`, see `redaction.looks_secret`)
    lose their value. An scp-like `user@host:path` carries no secret and is kept.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc and (parts.scheme.lower().startswith("http") or ":" in _userinfo(netloc)):
        user = _userinfo(netloc).partition(":")[0]
        kept = "" if parts.scheme.lower().startswith("http") else f"{user}@"
        netloc = kept + netloc.rpartition("@")[2]
    if query:
        query = "&".join(
            f"{name}={MASK}" if looks_secret(unquote(name)) else pair
            for pair in query.split("&")
            for name in [pair.partition("=")[0]]
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _userinfo(netloc: str) -> str:
    return netloc.rpartition("@")[0]


def _credentials(url: str) -> tuple[dict[str, str], list[str]]:
    """(environment that hands `url`'s secrets to git, the secrets themselves) for a URL
    given with credentials; both empty for one without."""
    if "://" not in url or url == public_url(url):
        return {}, []
    parts = urlsplit(url)
    env: dict[str, str] = {}
    secrets = [unquote(v) for k, v in parse_qsl_raw(parts.query) if looks_secret(unquote(k))]
    if "@" in parts.netloc and parts.scheme.lower().startswith("http"):
        user, _, password = _userinfo(parts.netloc).partition(":")
        env = {_USER_VARIABLE: unquote(user), _PASSWORD_VARIABLE: unquote(password)}
        # `oauth2:TOKEN@`: the password is the secret; `TOKEN@`: the user name is.
        secrets.append(unquote(password or user))
    elif "@" in parts.netloc:
        secrets.append(unquote(_userinfo(parts.netloc).partition(":")[2]))
    if parts.query:
        # git gets the URL in public form; this rewrites it back to the real one inside git,
        # from git's environment (GIT_CONFIG_COUNT, git >= 2.31), never its argument list.
        real = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{real}.insteadOf",
            "GIT_CONFIG_VALUE_0": public_url(url),
        }
    return env, [s for s in secrets if s]


def parse_qsl_raw(query: str) -> list[tuple[str, str]]:
    """The `name=value` pairs of a query, undecoded."""
    return [(pair.partition("=")[0], pair.partition("=")[2]) for pair in query.split("&") if pair]


def scrub(text: str, url: str | None) -> str:
    """`text` (git's stderr, an error message) without `url`'s credentials: git may echo
    the URL it used, or parts of it."""
    if url:
        text = mask(text.replace(url, public_url(url)), _credentials(url)[1])
    return _URL_IN_TEXT.sub(lambda found: public_url(found[0]), text)


def run_git(
    args: list[str], *, timeout: float, url: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git without prompts, `ext::` or the user's credential helpers, and with only
    `child_env.git_environment` of Timbel's environment.

    Args:
        args: git's arguments after the safe configuration; name a URL in them only in its
            public form (`public_url`), after `--`.
        timeout: the longest the command may take, in seconds.
        url: the configured URL the command uses, credentials and all: they reach git
            through a credential helper that reads git's own environment (and a query
            secret through an `insteadOf` rewrite there), never its argument list, and
            are scrubbed from the returned stderr.
        cwd: the working directory.

    Raises:
        FileNotFoundError: git is not installed.
        subprocess.TimeoutExpired: it took longer than `timeout`.
    """
    extra, _ = _credentials(url) if url else ({}, [])
    env = git_environment(extra)
    helper = ("-c", "credential.helper=", "-c", _HELPER) if _USER_VARIABLE in extra else ()
    completed = subprocess.run(
        ["git", *_SAFE, *helper, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        check=False,
    )
    completed.stderr = scrub(completed.stderr, url)
    return completed


def repository_key(url: str) -> str:
    """A spelling-independent key of a repository URL: host and path, lower case, without
    scheme, credentials, trailing `/` or `.git` (`git@h:g/p.git` and `https://h/g/p` match)."""
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        host, path = (parts.hostname or ""), parts.path
    elif match := _SCP.match(text):
        host, path = match["host"], match["path"]
    else:
        host, path = "", text
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host.lower()}/{path}".lower()


def _git(
    args: list[str], what: str, timeout: float, cwd: Path | None = None, url: str | None = None
) -> str:
    try:
        completed = run_git(args, timeout=timeout, url=url, cwd=cwd)
    except FileNotFoundError:
        raise SourceError(SYSTEM, what, "git is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError(SYSTEM, what, f"git {args[0]} took longer than {timeout:g}s") from None
    if completed.returncode != 0:
        raise SourceError(SYSTEM, what, f"git {args[0]} failed: {failure(completed)}")
    return completed.stdout


def failure(completed: subprocess.CompletedProcess[str]) -> str:
    """git's reason for failing, on one line: its `fatal:` lines, else its last line."""
    lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
    fatal = [line.removeprefix("fatal: ") for line in lines if line.startswith("fatal:")]
    return "; ".join(fatal or lines[-1:]) or f"exit code {completed.returncode}"


def _mirror_path(home: Path, url: str) -> Path:
    key = repository_key(url)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", key.rsplit("/", 1)[-1]) or "repository"
    return home / "git" / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.git"


def _local(entry: str, timeout: float) -> GitRepository:
    path = Path(entry).expanduser()
    if not path.exists():
        raise SourceNotFoundError(SYSTEM, entry, "does not exist, so it is not a git repository")
    try:
        _git(["-C", str(path), "rev-parse", "--git-dir"], entry, timeout)
    except SourceError:
        raise SourceError(SYSTEM, entry, "is not a git repository") from None
    path = path.resolve()
    origin = run_git(
        ["-C", str(path), "config", "--get", "remote.origin.url"], timeout=timeout
    ).stdout.strip()
    name = public_url(origin) if origin and is_git_url(origin) else str(path)
    return GitRepository(name=name, path=path, url=None, action="read")


def local_copy(entry: str, home: Path, timeout: float = 600.0) -> GitRepository:
    """The local repository to read `entry`'s history from, cloned or fetched as needed.

    Args:
        entry: a local path or a clone URL, as configured.
        home: TIMBEL_HOME; clones go to `home/git/`.
        timeout: the longest one git command may take, in seconds.

    Raises:
        SourceNotFoundError: a local path does not exist.
        SourceError: the path is not a git repository, or cloning or fetching failed; the
            message names the entry (without credentials) and git's reason.
    """
    if not is_git_url(entry):
        return _local(entry, timeout)
    shown = public_url(entry)
    target = _mirror_path(home, entry)
    if target.exists():
        # The URL is given on the command line (public; its credentials through `run_git`),
        # so credentials never reach the clone's config.
        fetch = ["fetch", "--prune", "--tags", "--quiet", "--", shown, _BRANCHES]
        _git(["-C", str(target), *fetch], shown, timeout, url=entry)
        return GitRepository(name=shown, path=target, url=shown, action="fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".clone-", dir=target.parent) as scratch:
        staging = Path(scratch) / "repository.git"
        _git(["clone", "--bare", "--quiet", "--", shown, str(staging)], shown, timeout, url=entry)
        _git(["-C", str(staging), "remote", "set-url", "--", "origin", shown], shown, timeout)
        _git(["-C", str(staging), "config", "remote.origin.fetch", _BRANCHES], shown, timeout)
        shutil.move(str(staging), target)
    return GitRepository(name=shown, path=target, url=shown, action="cloned")
