"""Local copies of the git repositories whose commits Timbel reads (TIMBEL_GIT_REPOSITORIES).

A local path (a work tree, a directory inside one, or a bare repository) is read where it is.
A clone URL is cloned bare into `<home>/git/<name>-<hash>.git` on first use and fetched on
later runs (`git fetch --prune --tags`: only new objects cross the network); the clone is
made in a scratch directory and renamed into place, so a failed first clone leaves nothing
behind. Branches are fetched onto themselves (`+refs/heads/*:refs/heads/*`), so HEAD, the
remote's default branch at clone time, moves with the remote. The clone's `origin` holds
the URL without credentials; fetches pass the configured URL on the command line.

Names: the warehouse knows a repository by its clone URL without credentials (a local path
by its `origin` URL when it has one, else its absolute path), which is how GitLab pipelines
name their repository (`http_url_to_repo`), so that commits, pipelines and deployments meet.
Credentials in a URL are used to clone and fetch but never stored, logged or shown.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
_CREDENTIALS = re.compile(r"//[^/@\s]+@")


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
    """`url` without the credentials it may carry: the user info of an http(s) URL (a token
    may be the user name), the password of any other (`ssh://git@host` keeps `git`)."""
    parts = urlsplit(url)
    if "://" not in url or "@" not in parts.netloc:
        return url
    if not parts.scheme.startswith("http") and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


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


def _git(args: list[str], what: str, timeout: float, cwd: Path | None = None) -> str:
    try:
        completed = subprocess.run(
            ["git", *_SAFE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise SourceError(SYSTEM, what, "git is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError(SYSTEM, what, f"git {args[0]} took longer than {timeout:g}s") from None
    if completed.returncode != 0:
        lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
        fatal = [line.removeprefix("fatal: ") for line in lines if line.startswith("fatal:")]
        reason = "; ".join(fatal or lines[-1:]) or f"exit code {completed.returncode}"
        reason = _CREDENTIALS.sub("//", reason)  # git may echo the URL it was given
        raise SourceError(SYSTEM, what, f"git {args[0]} failed: {reason}")
    return completed.stdout


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
    origin = subprocess.run(
        ["git", "-C", str(path), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
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
        # The URL is given on the command line: credentials never reach the clone's config.
        fetch = ["fetch", "--prune", "--tags", "--quiet", "--", entry, _BRANCHES]
        _git(["-C", str(target), *fetch], shown, timeout)
        return GitRepository(name=shown, path=target, url=shown, action="fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".clone-", dir=target.parent) as scratch:
        staging = Path(scratch) / "repository.git"
        _git(["clone", "--bare", "--quiet", "--", entry, str(staging)], shown, timeout)
        _git(["-C", str(staging), "remote", "set-url", "origin", shown], shown, timeout)
        _git(["-C", str(staging), "config", "remote.origin.fetch", _BRANCHES], shown, timeout)
        shutil.move(str(staging), target)
    return GitRepository(name=shown, path=target, url=shown, action="cloned")
