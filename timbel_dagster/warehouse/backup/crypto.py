"""The encrypted backup file: AES-256-GCM in fixed-size chunks, and the manifest's HMAC.

File layout (format 1):

    header  = b"TIMBELBK" | version (1 byte) | chunk size (4 bytes) | nonce prefix (8 bytes)
    record  = ciphertext length (4 bytes, big-endian) | ciphertext with its 16-byte tag
    file    = header | record ... | the final record

Each chunk holds at most CHUNK_SIZE plaintext bytes. Its nonce is the file's random prefix
and the chunk's index (4 bytes), so no nonce repeats under one key while files get their own
prefix; its associated data is the header, the index (8 bytes) and a final flag. Hence an
edited byte, chunks swapped or moved, a chunk from another file, the header changed and the
file cut after any chunk (no chunk carries the final flag) each fail authentication, and
the error says which. The last record always carries the flag (it may be empty).

The key (TIMBEL_BACKUP_KEY) is never used directly: HKDF-SHA256 derives the data key, the
manifest's HMAC key and a short key id, which manifests carry so a wrong key is named as
such instead of as tampering.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

MAGIC = b"TIMBELBK"
FORMAT_VERSION = 1
CHUNK_SIZE = 1 << 20  # 1 MiB of plaintext per chunk
_PREFIX_BYTES = 8
HEADER_SIZE = len(MAGIC) + 1 + 4 + _PREFIX_BYTES
_TAG_BYTES = 16
_LENGTH = struct.Struct(">I")
KEY_HELP = (
    'generate one with `openssl rand -base64 32` (or `python -c "import base64, os; '
    'print(base64.b64encode(os.urandom(32)).decode())"`), set it as TIMBEL_BACKUP_KEY and '
    "keep a copy off this machine"
)


class BackupError(ValueError):
    """A backup cannot be made, read or restored; the message names the problem."""


class BackupKeyError(BackupError):
    """TIMBEL_BACKUP_KEY is missing, malformed, or not the key a backup was made with."""


class BackupIntegrityError(BackupError):
    """A backup file or manifest is truncated, tampered with or damaged."""


@dataclass(frozen=True)
class BackupKeys:
    """The keys derived from TIMBEL_BACKUP_KEY."""

    data: bytes
    manifest: bytes
    key_id: str

    @classmethod
    def from_setting(cls, value: str | None) -> BackupKeys:
        """The keys of a base64 32-byte TIMBEL_BACKUP_KEY; BackupKeyError otherwise."""
        if not value or not value.strip():
            raise BackupKeyError(f"TIMBEL_BACKUP_KEY is not set: {KEY_HELP}")
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BackupKeyError(f"TIMBEL_BACKUP_KEY is not base64: {KEY_HELP}") from None
        if len(raw) != 32:
            raise BackupKeyError(f"TIMBEL_BACKUP_KEY holds {len(raw)} bytes, not 32: {KEY_HELP}")
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> BackupKeys:
        return cls(
            data=_derive(raw, b"timbel backup data v1"),
            manifest=_derive(raw, b"timbel backup manifest v1"),
            key_id=_derive(raw, b"timbel backup key id v1")[:8].hex(),
        )


def _derive(raw: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


class ChunkEncryptor:
    """Plaintext in, encrypted records out, holding at most `chunk_size` bytes at a time.

    `feed` returns the records of the chunks it completed; `finish` the final record. The
    memory held is the one chunk buffer, whatever the size of the stream (`buffered`).
    """

    def __init__(self, keys: BackupKeys, chunk_size: int = CHUNK_SIZE) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if chunk_size < 1 or chunk_size > 1 << 30:
            raise ValueError("chunk_size must be between 1 byte and 1 GiB")
        self._aes = AESGCM(keys.data)
        self.chunk_size = chunk_size
        self.prefix = os.urandom(_PREFIX_BYTES)
        self.header = MAGIC + bytes([FORMAT_VERSION]) + _LENGTH.pack(chunk_size) + self.prefix
        self._buffer = bytearray()
        self._index = 0
        self._finished = False

    @property
    def buffered(self) -> int:
        """Plaintext bytes held, waiting for their chunk to fill: always below chunk_size."""
        return len(self._buffer)

    def _seal(self, plaintext: bytes, final: bool) -> bytes:
        if self._index >= 1 << 32:
            raise BackupError("backup too large for one file (2^32 chunks)")
        sealed = self._aes.encrypt(
            _nonce(self.prefix, self._index), plaintext, _aad(self.header, self._index, final)
        )
        self._index += 1
        return _LENGTH.pack(len(sealed)) + sealed

    def feed(self, data: bytes) -> list[bytes]:
        if self._finished:
            raise RuntimeError("the encryptor is finished")
        records = []
        view = memoryview(data)
        while view:
            take = min(len(view), self.chunk_size - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            # A full chunk is sealed only once more data follows: the last chunk must carry
            # the final flag, and until the stream ends we cannot know which one that is.
            if len(self._buffer) == self.chunk_size and view:
                records.append(self._seal(bytes(self._buffer), final=False))
                self._buffer.clear()
        if len(self._buffer) == self.chunk_size:
            # Full, and nothing left of this piece: seal it now as not final, so the buffer
            # never holds more than one chunk; the final record then comes empty.
            records.append(self._seal(bytes(self._buffer), final=False))
            self._buffer.clear()
        return records

    def finish(self) -> bytes:
        """The final record (the rest of the buffer, possibly empty)."""
        record = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        self._finished = True
        return record


def encrypt_stream(
    keys: BackupKeys, plaintext: Iterable[bytes], chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """The whole encrypted file, header first, as it is produced."""
    encryptor = ChunkEncryptor(keys, chunk_size)
    yield encryptor.header
    for piece in plaintext:
        yield from encryptor.feed(piece)
    yield encryptor.finish()


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = source.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def decrypt_stream(keys: BackupKeys, source: BinaryIO, what: str = "the backup") -> Iterator[bytes]:
    """The plaintext of an encrypted file, one authenticated chunk at a time.

    Every chunk is authenticated before it is yielded, so a consumer never sees a byte that
    failed; but only the end of the stream shows a truncated file, so a consumer that acts
    on the chunks (a restore) must be able to undo what it did when this raises.

    Raises:
        BackupIntegrityError: not a backup, an unknown format, a chunk that fails
            authentication (tampered, reordered, or another key), a file cut short, or data
            after the final chunk.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(keys.data)
    header = _read_exactly(source, HEADER_SIZE)
    if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
        raise BackupIntegrityError(f"{what} is not a Timbel backup file (no header)")
    if header[len(MAGIC)] != FORMAT_VERSION:
        raise BackupIntegrityError(
            f"{what} is in format {header[len(MAGIC)]}, this version reads {FORMAT_VERSION}"
        )
    (chunk_size,) = _LENGTH.unpack(header[len(MAGIC) + 1 : len(MAGIC) + 5])
    prefix = header[len(MAGIC) + 5 :]
    index = 0
    while True:
        length_bytes = _read_exactly(source, _LENGTH.size)
        if not length_bytes:
            raise BackupIntegrityError(
                f"{what} is truncated: it ends after chunk {index - 1} without the final chunk"
            )
        if len(length_bytes) < _LENGTH.size:
            raise BackupIntegrityError(f"{what} is truncated inside chunk {index}")
        (length,) = _LENGTH.unpack(length_bytes)
        if length < _TAG_BYTES or length > chunk_size + _TAG_BYTES:
            # (A changed chunk size in the header fails authentication at the first chunk.)
            raise BackupIntegrityError(
                f"{what} is tampered with or damaged: chunk {index}'s length field is wrong"
            )
        sealed = _read_exactly(source, length)
        if len(sealed) < length:
            raise BackupIntegrityError(f"{what} is truncated inside chunk {index}")
        plaintext = None
        for final in (False, True):
            try:
                plaintext = aes.decrypt(_nonce(prefix, index), sealed, _aad(header, index, final))
            except InvalidTag:
                continue
            break
        if plaintext is None:
            raise BackupIntegrityError(
                f"{what} fails authentication at chunk {index}: tampered with, chunks "
                "reordered, or encrypted with another key"
            )
        yield plaintext
        index += 1
        if final:
            if source.read(1):
                raise BackupIntegrityError(
                    f"{what} has data after its final chunk {index - 1} (appended or reordered)"
                )
            return


def sign_manifest(keys: BackupKeys, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with `key_id` and an `hmac` over its canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "hmac"} | {"key_id": keys.key_id}
    return body | {"hmac": _mac(keys, body)}


def check_manifest(keys: BackupKeys, manifest: dict[str, Any], what: str) -> dict[str, Any]:
    """The manifest without its `hmac`, after checking the key id and the HMAC."""
    body = {k: v for k, v in manifest.items() if k != "hmac"}
    if body.get("key_id") != keys.key_id:
        raise BackupKeyError(
            f"{what} was made with another key (key id {body.get('key_id')}; "
            f"TIMBEL_BACKUP_KEY has key id {keys.key_id})"
        )
    if not hmac.compare_digest(str(manifest.get("hmac", "")), _mac(keys, body)):
        raise BackupIntegrityError(f"{what}'s manifest is tampered with (its HMAC does not match)")
    return body


def _mac(keys: BackupKeys, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(keys.manifest, canonical, hashlib.sha256).hexdigest()
