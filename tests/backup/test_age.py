"""Our age writer and reader against the reference implementation (pyrage, i.e. rage)."""

from __future__ import annotations

import io
import subprocess

import pyrage
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519

from phiguard.backup import age
from phiguard.backup.archive import raw_frame
from phiguard.errors import CryptoError, InputError

ALICE, BOB = x25519.Identity.generate(), x25519.Identity.generate()
SIZES = st.sampled_from([0, 1, 100, age.CHUNK - 1, age.CHUNK, age.CHUNK + 1, 3 * age.CHUNK])


def seal(data: bytes, *who: x25519.Identity, step: int = 7000) -> bytes:
    out = io.BytesIO()
    w = age.AgeWriter(out, [age.recipient_key(str(i.to_public())) for i in who])
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    w.close()
    return out.getvalue()


def read_all(blob: bytes, *who: x25519.Identity) -> bytes:
    r = age.AgeReader(io.BytesIO(blob), [age.identity_key(str(i)) for i in who])
    return b"".join(iter(lambda: r.read(5000), b""))


@settings(max_examples=25, deadline=None)
@given(size=SIZES, extra=st.integers(0, 3), step=st.integers(1, 200_000))
def test_reference_reads_what_we_write(size: int, extra: int, step: int) -> None:
    data = bytes(range(256)) * ((size + extra) // 256 + 1)
    data = data[: size + extra]
    blob = seal(data, ALICE, BOB, step=step)
    assert pyrage.decrypt(blob, [ALICE]) == data
    assert pyrage.decrypt(blob, [BOB]) == data


@settings(max_examples=25, deadline=None)
@given(size=SIZES, extra=st.integers(0, 3))
def test_we_read_what_the_reference_writes(size: int, extra: int) -> None:
    data = b"\x5a" * (size + extra)
    blob = pyrage.encrypt(data, [BOB.to_public(), ALICE.to_public()])  # adds grease stanzas
    assert read_all(blob, ALICE) == data
    assert read_all(blob, x25519.Identity.generate(), BOB) == data


def test_wrong_identity_is_refused() -> None:
    blob = seal(b"secret", ALICE)
    with pytest.raises(CryptoError, match="no identity"):
        read_all(blob, BOB)


@pytest.mark.parametrize(
    "damage",
    ["header", "mac", "nonce", "payload", "cut-at-chunk", "cut-tail", "appended", "empty"],
)
def test_any_damage_is_refused(damage: str) -> None:
    data = bytes(3 * age.CHUNK)
    blob = bytearray(seal(data, ALICE))
    header_end = blob.index(b"\n---") + 49  # "\n--- ", 43 base64 characters, "\n"
    if damage == "header":
        blob[30] ^= 1  # inside the X25519 stanza
    elif damage == "mac":
        blob[header_end - 5] = ord("A") if blob[header_end - 5] != ord("A") else ord("B")
    elif damage == "nonce":
        blob[header_end + 3] ^= 1
    elif damage == "payload":
        blob[-age.CHUNK] ^= 0x80
    elif damage == "cut-at-chunk":
        blob = blob[: header_end + 16 + 2 * age.SEALED]  # the rest looks whole but is not
    elif damage == "cut-tail":
        blob = blob[:-1]
    elif damage == "appended":
        blob += b"\0" * 20
    else:
        blob = blob[:header_end]
    with pytest.raises(CryptoError):
        read_all(bytes(blob), ALICE)
    with pytest.raises(pyrage.DecryptError):  # the reference agrees that it is damaged
        pyrage.decrypt(bytes(blob), [ALICE])


def test_keys_are_checked() -> None:
    good = str(ALICE.to_public())
    assert age.recipient_key(good) == age.recipient_key(good.upper())
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")
    with pytest.raises(InputError, match="checksum"):
        age.recipient_key(bad)
    with pytest.raises(InputError):
        age.recipient_key(str(ALICE))  # an identity is not a recipient
    with pytest.raises(InputError):
        age.identity_key(good)


@pytest.mark.parametrize("size", [0, 1, 128 * 1024, 128 * 1024 + 1, 1 << 20])
def test_raw_frames_are_zstd(size: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(251)) * (size // 251 + 1)
    data = data[:size]
    blob = zstandard.ZstdCompressor(level=1).compress(b"head") + raw_frame(data) + raw_frame(b"!")
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    assert reader.read() == b"head" + data + b"!"
    path = tmp_path / "x.zst"
    path.write_bytes(blob)
    out = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    assert out == b"head" + data + b"!"
