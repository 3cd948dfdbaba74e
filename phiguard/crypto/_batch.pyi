# Types of the C extension phiguard/crypto/_batch.c (see its header comment).
from typing import Any

def hmac_many(
    key: bytes, prefix: bytes, values: list[bytes | None], out_len: int
) -> list[bytes | None]: ...
def gcm_many(
    key: bytes, header: bytes, nonces: bytes, plaintexts: list[bytes], aad: bytes
) -> list[bytes]: ...
def hmac_arrow(
    key: bytes,
    prefix: bytes,
    validity: Any,
    offsets: Any,
    data: Any,
    offset: int,
    length: int,
    out_len: int,
) -> bytes: ...
def gcm_arrow(
    key: bytes,
    header: bytes,
    nonces: bytes,
    offsets: Any,
    data: Any,
    offset: int,
    length: int,
    aad: bytes,
) -> tuple[bytes, bytes]: ...
