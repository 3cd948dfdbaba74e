"""Keyed blind indexes: HMAC-SHA256 over a normalised value, truncated to 16 bytes.

There are only about 7×10^8 possible HKIDs, so an unkeyed hash of one is reversed by brute
force in seconds. A keyed HMAC with a key that never leaves the keyring cannot be. The kind
(``hkid``, ``hospital_no``, ``surname`` …) is mixed in so equal strings of different kinds
never share an index value. 16 bytes keep collisions out of reach (2^-64 at 7.5 M rows)
while halving the index size.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

try:  # OpenSSL's HMAC object: copy() clones the keyed state in C
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _hmac_new = None  # type: ignore[assignment]
try:  # the optional C extension: a whole column per call (phiguard/crypto/_batch.c)
    from phiguard.crypto import _batch
except ImportError:  # pragma: no cover - built without a C compiler or OpenSSL headers
    _batch = None  # type: ignore[assignment]

DIGEST_BYTES = 16


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, kind: str, value: str) -> bytes:
        msg = kind.encode() + b"\x00" + value.encode()
        return hmac.digest(self._key, msg, "sha256")[:DIGEST_BYTES]

    def prepared(self, kind: str) -> Callable[[str], bytes]:
        """``digest`` for one kind, for bulk loops: the HMAC state keyed and fed ``kind\\0``
        once, then copied per value (about half the cost of a one-shot HMAC). Same output."""
        if _hmac_new is None:  # pragma: no cover
            return lambda value: self.digest(kind, value)
        base = _hmac_new(self._key, kind.encode() + b"\x00", "sha256")

        def digest(value: str) -> bytes:
            h = base.copy()
            h.update(value.encode())
            return h.digest()[:DIGEST_BYTES]

        return digest

    def many(self, kind: str) -> Callable[[list[bytes | None]], list[bytes | None]]:
        """``digest`` of one kind over a list of UTF-8 values (``None`` stays ``None``), for
        bulk loads: the keyed state is prepared once and copied per value."""
        prefix = kind.encode() + b"\x00"
        if _batch is not None:
            key = self._key
            return lambda values: _batch.hmac_many(key, prefix, values, DIGEST_BYTES)
        if _hmac_new is None:  # pragma: no cover
            one = self.prepared(kind)
            return lambda values: [None if v is None else one(v.decode()) for v in values]
        base = _hmac_new(self._key, prefix, "sha256")

        def run(values: list[bytes | None]) -> list[bytes | None]:
            out: list[bytes | None] = []
            append, copy = out.append, base.copy
            for v in values:
                if v is None:
                    append(None)
                else:
                    h = copy()
                    h.update(v)
                    append(h.digest()[:DIGEST_BYTES])
            return out

        return run

    def column(self, kind: str) -> Callable[[Any], Any]:
        """``digest`` of one kind over an Arrow string or binary array, as a binary array
        (null stays null). With the C extension the column never becomes Python objects."""
        prefix, many = kind.encode() + b"\x00", self.many(kind)

        def run(arr: Any) -> Any:
            import pyarrow as pa
            import pyarrow.compute as pc

            if _batch is None or arr.type not in (pa.string(), pa.binary()):
                return pa.array(many(pc.cast(arr, pa.binary()).to_pylist()), pa.binary())
            _, offsets, data = arr.buffers()
            valid = None if arr.null_count == 0 else pc.is_valid(arr).buffers()[1]
            out = _batch.hmac_arrow(
                self._key, prefix, valid, offsets, data or b"", arr.offset, len(arr), DIGEST_BYTES
            )
            fixed = pa.Array.from_buffers(
                pa.binary(DIGEST_BYTES), len(arr), [valid, pa.py_buffer(out)]
            )
            return fixed.cast(pa.binary())

        return run

    def hexdigest(self, kind: str, value: str) -> str:
        return self.digest(kind, value).hex()
