"""HMAC-SHA256 signing of stored values, shared by rcache.Cache and
rcache.web2py.redis_cache.RedisCache.

A signed value is a marker, the HMAC of the full key (length-prefixed) and
the data, then the data. The marker starts with a NUL byte, so readers that
do not know it fail to unpickle a signed value rather than misread it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Optional, Union

SIGNED = b"\x00rcache-signed-v1\x00"
MAC_BYTES = 32


def secret_key_bytes(secret_key: Union[str, bytes, None]) -> Optional[bytes]:
    """The key as bytes (str as UTF-8); None (no signing) for None or empty."""
    if secret_key is None:
        return None
    if isinstance(secret_key, str):
        secret_key = secret_key.encode("utf-8")
    if not isinstance(secret_key, bytes):
        raise TypeError(f"secret_key must be str or bytes, not {type(secret_key).__name__}")
    return secret_key or None


class Signer:
    """Signs and checks values stored under keys of one namespace (prefix)."""

    def __init__(self, secret_key: bytes, prefix: bytes) -> None:
        self._secret_key = secret_key
        self._prefix = prefix

    def sign(self, key: bytes, data: bytes) -> bytes:
        return SIGNED + self._mac(key, data) + data

    def verify(self, key: bytes, stored: bytes) -> Optional[bytes]:
        """The data of a value signed with this key for this key; None when it
        is unsigned or its signature is wrong."""
        if not stored.startswith(SIGNED):
            return None
        mac_end = len(SIGNED) + MAC_BYTES
        data = stored[mac_end:]
        if not hmac.compare_digest(stored[len(SIGNED) : mac_end], self._mac(key, data)):
            return None
        return data

    def _mac(self, key: bytes, data: bytes) -> bytes:
        full_key = self._prefix + key
        message = len(full_key).to_bytes(4, "big") + full_key + data
        return hmac.new(self._secret_key, message, hashlib.sha256).digest()
