"""Signatures of stored models: nothing read from `ml_models` is unpickled unless it was
signed with this installation's key.

A model artifact is a joblib pickle, and unpickling runs whatever code the bytes name, so a
row written by anyone with write access to the warehouse would run code wherever a model is
loaded. Each artifact is therefore stored with an HMAC-SHA256 over its exact bytes and the
fields that say which model it is (name, version, code version, features), so that a valid
artifact cannot be passed off under another name or version either. The HMAC is checked in
constant time before a single byte is deserialised.

The key is derived from TIMBEL_SECRET_KEY (HKDF-SHA256 with a purpose label, so it differs
from the key that signs unsubscribe links) when that is set; otherwise it is a random key
generated on first use in TIMBEL_HOME/keys/model-signing.key (mode 0600, directory 0700).
Where the Dagster run worker, the webserver and the CLI run on different hosts they must
share the key: set the same TIMBEL_SECRET_KEY on all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings

SCHEME = "hmac-sha256"
PURPOSE = b"timbel/ml-model-signing/v1"
KEY_FILE = Path("keys") / "model-signing.key"
_KEY_BYTES = 32


def _retrain(name: str) -> str:
    return (
        "retrain it with the ml_retrain job or `dagster asset materialize -m "
        f"timbel_dagster.definitions --select ml/{name}`"
    )


class ModelKeyError(ValueError):
    """The key file exists but holds no key, or cannot be created."""


class ModelSignatureError(LookupError):
    """A stored model is unsigned or does not match its signature: it is never unpickled,
    and there is no trustworthy model until it is retrained (a LookupError, like having no
    model at all, so a deployment request is still made, just not assessed)."""


@dataclass(frozen=True)
class ModelKey:
    """The secret that signs and verifies models, and where it came from (for messages)."""

    secret: bytes = field(repr=False)
    source: str

    @property
    def from_secret_key(self) -> bool:
        return self.source == "TIMBEL_SECRET_KEY"


def derive_key(secret_key: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) of TIMBEL_SECRET_KEY for signing models and nothing else."""
    extracted = hmac.new(b"timbel", secret_key.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(extracted, PURPOSE + b"\x01", hashlib.sha256).digest()


def model_key(settings: Settings) -> ModelKey:
    """The key of this installation: derived from TIMBEL_SECRET_KEY when it is set, else the
    key file under TIMBEL_HOME, generated on first use."""
    if settings.timbel_secret_key is not None:
        value = settings.timbel_secret_key.get_secret_value()
        if value:
            return ModelKey(derive_key(value), "TIMBEL_SECRET_KEY")
    path = (settings.timbel_home / KEY_FILE).resolve()
    return ModelKey(read_or_create_key_file(path), str(path))


def read_or_create_key_file(path: Path) -> bytes:
    """The key in `path` (64 hex digits); a new random one, written atomically with mode
    0600 in a 0700 directory, when the file does not exist yet."""
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelKeyError(
            f"{path}: not a model-signing key ({error}); restore it, or delete it to make a "
            "new one (every model signed with the old key must then be retrained)"
        ) from None
    if len(key) != _KEY_BYTES:
        raise ModelKeyError(
            f"{path}: not a model-signing key (expected {2 * _KEY_BYTES} hex digits); restore "
            "it, or delete it to make a new one (models signed with it must then be retrained)"
        )
    return key


def _create_key_file(path: Path) -> None:
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        # Written under a unique name, then linked into place: a concurrent first use never
        # sees half a key, and whichever process links first wins for everyone.
        temporary = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use its
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise ModelKeyError(
            f"cannot create the model-signing key {path}: {error.strerror or error}; make "
            "TIMBEL_HOME writable or set TIMBEL_SECRET_KEY"
        ) from None


def _mac(
    key: ModelKey,
    *,
    name: str,
    version: int,
    code_version: str,
    features: object,
    artifact: bytes,
) -> str:
    # `features` as stored (JSON): anything but the list that was signed fails to match.
    identity = json.dumps([name, version, code_version, features], separators=(",", ":")).encode(
        "utf-8"
    )
    mac = hmac.new(key.secret, PURPOSE, hashlib.sha256)
    # Length-prefixed, so no choice of fields can make two different rows sign alike.
    mac.update(len(identity).to_bytes(8, "big") + identity)
    mac.update(artifact)
    return f"{SCHEME}:{mac.hexdigest()}"


def sign(
    key: ModelKey,
    *,
    name: str,
    version: int,
    code_version: str,
    features: list[str],
    artifact: bytes,
) -> str:
    """The `artifact_signature` of a model row: `hmac-sha256:` and 64 hex digits."""
    return _mac(
        key,
        name=name,
        version=version,
        code_version=code_version,
        features=features,
        artifact=artifact,
    )


def verify(
    key: ModelKey,
    signature: str | None,
    *,
    name: str,
    version: int,
    code_version: str,
    features: object,
    artifact: bytes,
) -> None:
    """Raise `ModelSignatureError` unless `signature` is this key's signature of the row.

    Only the bytes are hashed here: call it before anything deserialises the artifact.
    """
    if not signature:
        raise ModelSignatureError(
            f"model {name} v{version} was stored without a signature (before signing "
            f"existed, or written outside Timbel), so it is not loaded: {_retrain(name)}"
        )
    expected = _mac(
        key,
        name=name,
        version=version,
        code_version=code_version,
        features=features,
        artifact=artifact,
    )
    if hmac.compare_digest(signature.encode("utf-8"), expected.encode("utf-8")):
        return
    hint = (
        "TIMBEL_SECRET_KEY was set or changed since it was signed"
        if key.from_secret_key
        else (
            f"it was signed on another host: this one signs with {key.source} because "
            "TIMBEL_SECRET_KEY is not set; where the Dagster run worker, webserver and CLI run "
            "on different hosts, set the same TIMBEL_SECRET_KEY on all of them"
        )
    )
    raise ModelSignatureError(
        f"model {name} v{version} does not match its signature, so it is not loaded: its "
        f"artifact, name, version, code version or features were changed after it was "
        f"signed, or {hint}; {_retrain(name)}"
    )
