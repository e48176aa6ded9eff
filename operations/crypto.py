"""Backups encrypted before they leave the machine: AES-256-GCM in framed chunks, streamed.

Layout (all integers big-endian):

    header  = b"INVBAK1\\n" | chunk size (u32) | nonce prefix (8 random bytes) | key id (8 bytes)
    frame   = ciphertext length (u32) | AES-256-GCM(chunk) with its 16-byte tag

Each frame's nonce is the file's random prefix followed by the frame number (u32), so no nonce is
reused under one key; its associated data is the header, the frame number and a final-frame flag,
so frames cannot be reordered, moved between files, dropped from the end (the last frame says it
is last) or have the header swapped. The key id (SHA-256 of the key, first 8 bytes) tells a wrong
key from a corrupt file before anything is decrypted. Memory use is one chunk (1 MiB), whatever
the size of the dump.

The key: BACKUP_ENCRYPTION_KEY, 32 random bytes in URL-safe base64
(`python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"INVBAK1\n"
HEADER = struct.Struct(">8sI8s8s")
CHUNK = 1 << 20
TAG = 16
SUFFIX = ".enc"


class DecryptError(Exception):
    """The file cannot be decrypted: wrong key, corrupt, truncated or not an encrypted backup."""


def key_from_env() -> bytes | None:
    raw = os.environ.get("BACKUP_ENCRYPTION_KEY", "").strip()
    return key_parse(raw) if raw else None


def key_parse(raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("BACKUP_ENCRYPTION_KEY is not base64") from None
    if len(key) != 32:
        raise ValueError(f"BACKUP_ENCRYPTION_KEY must be 32 bytes (it is {len(key)})")
    return key


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"inventory backup key id" + key).digest()[:8]


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">IB", index, 1 if final else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def encrypt_file(source: Path, target: Path, key: bytes, *, chunk_size: int = CHUNK) -> str:
    """Encrypt `source` into `target`, one chunk in memory at a time; returns the SHA-256 of
    the encrypted file (what the remote copy is checked against)."""
    aead = AESGCM(key)
    header = HEADER.pack(MAGIC, chunk_size, os.urandom(8), key_id(key))
    prefix = header[12:20]
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as out:

        def write(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        write(header)
        index, chunk = 0, src.read(chunk_size)
        while True:
            following = src.read(chunk_size) if chunk else b""
            final = not following
            sealed = aead.encrypt(_nonce(prefix, index), chunk, _aad(header, index, final))
            write(struct.pack(">I", len(sealed)) + sealed)
            if final:
                break
            index, chunk = index + 1, following
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def decrypt_stream(src, out, key: bytes) -> None:
    """Decrypt from a readable binary stream into a writable one. Raises DecryptError; the
    caller discards what was written then (frames before the bad one were genuine)."""
    src = _Reader(src)
    header = src.read(HEADER.size)
    if len(header) < HEADER.size:
        raise DecryptError("not an encrypted backup (too short)")
    magic, chunk_size, prefix, kid = HEADER.unpack(header)
    if magic != MAGIC:
        raise DecryptError("not an encrypted backup (bad header)")
    if kid != key_id(key):
        raise DecryptError("wrong key: the backup was encrypted with another key")
    aead = AESGCM(key)
    index, final = 0, False
    while not final:
        size_bytes = src.read(4)
        if len(size_bytes) < 4:
            raise DecryptError(f"truncated: frame {index} missing, no final frame")
        (size,) = struct.unpack(">I", size_bytes)
        if size < TAG or size > chunk_size + TAG:
            raise DecryptError(f"corrupt: frame {index} has an impossible length {size}")
        sealed = src.read(size)
        if len(sealed) < size:
            raise DecryptError(f"truncated inside frame {index}")
        # Which frame is last is authenticated: try "final" only when nothing follows.
        following = src.read(1)
        final = not following
        src.unread(following)
        try:
            out.write(aead.decrypt(_nonce(prefix, index), sealed, _aad(header, index, final)))
        except InvalidTag:
            raise DecryptError(f"corrupt: frame {index} fails authentication") from None
        index += 1


def decrypt_file(source: Path, target: Path, key: bytes) -> None:
    """Decrypt into `target` via `target.partial`: a target with its final name is genuine."""
    partial = target.with_name(target.name + ".partial")
    try:
        with source.open("rb") as src, partial.open("wb") as out:
            decrypt_stream(src, out, key)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _Reader:
    """A stream with a byte read ahead put back in front (to learn whether a frame is last)."""

    def __init__(self, raw):
        self.raw, self.head = raw, b""

    def unread(self, data: bytes) -> None:
        self.head = data + self.head

    def read(self, n: int) -> bytes:
        head, self.head = self.head[:n], self.head[n:]
        return head + (self.raw.read(n - len(head)) if n > len(head) else b"")
