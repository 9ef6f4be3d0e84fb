"""The keys that seal kernels' HMAC keys in the store, so that any API task can reattach to a kernel.

A kernel record (``models.KernelRecord``) holds its kernel's connection info; the HMAC key that signs every
message to the kernel is kept only sealed: AES-256-GCM under a key of its own (never the JWT secret), with
the record's id as associated data, so a sealed key copied onto another record does not open. Each key is a
secret text: ``BI_KERNEL_KEYS`` (on AWS, injected by ECS from Secrets Manager) or the file
``BI_KERNEL_KEYS_FILE`` (compose's ``keys-init`` makes one with ``bi executor-key --kernel-keys``), secrets
separated by commas or whitespace, the first the one that seals. During a rotation the secret holds the new
key then the old one: records sealed under either open, new ones are sealed under the new. A record names its
key by ``key_id``, a digest of the secret that reveals nothing of it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import secrets_file

NONCE_BYTES = 12
MIN_SECRET_CHARS = 32
MAX_KEYS = 2  # the current key and, during a rotation, the one before it


class KernelKeyError(ValueError):
    """The kernel keys are unusable, or a sealed key does not open with them."""


def key_id(secret: str) -> str:
    return hashlib.sha256(f"bi-kernel-key-id:{secret}".encode()).hexdigest()[:16]


class KernelKeys:
    """Seals and opens kernels' HMAC keys; ``secrets`` newest first (at most ``MAX_KEYS``)."""

    def __init__(self, secrets_: list[str]):
        if not secrets_:
            raise KernelKeyError("no kernel key is set")
        if len(secrets_) > MAX_KEYS:
            raise KernelKeyError(f"at most {MAX_KEYS} kernel keys (the current one, then the previous one)")
        for secret in secrets_:
            if len(secret) < MIN_SECRET_CHARS:
                raise KernelKeyError(f"a kernel key must have at least {MIN_SECRET_CHARS} characters")
        self._keys = {key_id(secret): AESGCM(hashlib.sha256(f"bi-kernel-key:{secret}".encode()).digest())
                      for secret in secrets_}
        self.current = key_id(secrets_[0])

    @classmethod
    def parse(cls, text: str) -> KernelKeys:
        return cls([part for part in re.split(r"[\s,]+", text) if part])

    def seal(self, key: bytes, record_id: str) -> tuple[str, str]:
        """``(key_id, sealed)``: ``key`` sealed under the current key for the record ``record_id``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._keys[self.current].encrypt(nonce, key, record_id.encode())
        return self.current, base64.b64encode(sealed).decode()

    def open(self, kid: str, sealed: str, record_id: str) -> bytes:
        """The key sealed for ``record_id``; ``KernelKeyError`` if its key is not one of ours or it was altered."""
        aead = self._keys.get(kid)
        if aead is None:
            raise KernelKeyError(f"the kernel key {kid} is not configured (rotated out?)")
        try:
            raw = base64.b64decode(sealed, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], record_id.encode())
        except (ValueError, InvalidTag) as exc:
            raise KernelKeyError("a sealed kernel key does not open with its key") from exc


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def load(text: str, file: str, data_dir: Path | None) -> KernelKeys:
    """The keys in ``text``, else in ``file``, else (embedded, ``data_dir``) one kept in the data dir."""
    if not text and file:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise KernelKeyError(f"cannot read the kernel keys file {file}: {exc.strerror}") from exc
    if not text and data_dir is not None:
        text, _ = secrets_file.read_or_create(data_dir / "kernel_keys", new_secret)
    if not text:
        raise KernelKeyError("set BI_KERNEL_KEYS or BI_KERNEL_KEYS_FILE (the keys that seal kernels' HMAC keys)")
    return KernelKeys.parse(text)
