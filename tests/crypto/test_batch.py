"""The batch crypto used by bulk loads computes exactly what the one-value code computes."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from phiguard.crypto import blind, fields
from phiguard.crypto.blind import BlindIndex
from phiguard.crypto.fields import FieldCipher
from phiguard.crypto.keyring import Keyring

_batch = pytest.importorskip("phiguard.crypto._batch", reason="the C extension is not built")

values = st.lists(st.one_of(st.none(), st.binary(max_size=200)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=150), prefix=st.binary(max_size=80), values=values)
def test_hmac_many_is_hmac_sha256_of_prefix_and_value(
    key: bytes, prefix: bytes, values: list[bytes | None]
) -> None:
    got = _batch.hmac_many(key, prefix, values, 16)
    want = [None if v is None else hmac.digest(key, prefix + v, "sha256")[:16] for v in values]
    assert got == want


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    aad=st.binary(max_size=40),
    plaintexts=st.lists(st.binary(max_size=300), max_size=20),
)
def test_gcm_many_tokens_open_with_the_standard_aead(
    key: bytes, aad: bytes, plaintexts: list[bytes]
) -> None:
    nonces = bytes(range(12)) * len(plaintexts)
    tokens = _batch.gcm_many(key, b"\x01\x07", nonces, plaintexts, aad)
    for i, (token, plain) in enumerate(zip(tokens, plaintexts, strict=True)):
        assert token[:2] == b"\x01\x07" and token[2:14] == nonces[12 * i : 12 * i + 12]
        assert token[14:] == AESGCM(key).encrypt(token[2:14], plain, aad)


def test_bad_arguments_are_errors_not_crashes() -> None:
    with pytest.raises(TypeError):
        _batch.hmac_many(b"k", b"", [b"a", "not bytes"], 16)
    with pytest.raises(TypeError):
        _batch.hmac_many(b"k", b"", (b"a",), 16)
    with pytest.raises(ValueError):
        _batch.hmac_many(b"k", b"", [b"a"], 33)
    with pytest.raises(ValueError):
        _batch.gcm_many(b"short", b"", b"x" * 12, [b"a"], b"")
    with pytest.raises(ValueError):
        _batch.gcm_many(b"k" * 32, b"", b"x" * 11, [b"a"], b"")
    with pytest.raises(TypeError):
        _batch.gcm_many(b"k" * 32, b"", b"x" * 12, [None], b"")


def test_blind_index_and_cipher_give_the_same_results_with_and_without_the_extension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = BlindIndex(b"k" * 32)
    column = [b"A1234563", None, "陳大文".encode(), b""]
    expected = [None if v is None else index.digest("hkid", v.decode()) for v in column]
    assert index.many("hkid")(column) == expected
    monkeypatch.setattr(blind, "_batch", None)
    assert index.many("hkid")(column) == expected

    ring = Keyring(None, {3: b"d" * 32}, 3, b"i" * 32, b"s" * 32)  # type: ignore[arg-type]
    cipher = FieldCipher(ring)
    plain = [b'{"name_en":"CHAN Tai Man"}', b""]
    tokens = cipher.encrypt_many(plain, b"ctx")
    assert [t[:2] for t in tokens] == [b"\x01\x03"] * 2
    assert [cipher.decrypt(t, b"ctx") for t in tokens] == plain
    monkeypatch.setattr(fields, "_batch", None)
    assert [cipher.decrypt(t, b"ctx") for t in cipher.encrypt_many(plain, b"ctx")] == plain


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=40),
    start=st.integers(0, 5),
)
def test_blind_index_column_equals_digest_per_value_even_on_slices(
    values: list[str | None], start: int
) -> None:
    import pyarrow as pa

    index = BlindIndex(b"x" * 32)
    arr = pa.array(values, pa.string())[start:]
    want = [None if v is None else index.digest("address", v) for v in arr.to_pylist()]
    assert index.column("address")(arr).to_pylist() == want


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.binary(max_size=120), max_size=30), start=st.integers(0, 3))
def test_encrypt_column_tokens_decrypt_to_the_values(values: list[bytes], start: int) -> None:
    import pyarrow as pa

    ring = Keyring(None, {2: b"d" * 32}, 2, b"i" * 32, b"s" * 32)  # type: ignore[arg-type]
    cipher = FieldCipher(ring)
    arr = pa.array(values, pa.binary())[start:]
    tokens = cipher.encrypt_column(arr, b"patient:pii").to_pylist()
    assert [cipher.decrypt(t, b"patient:pii") for t in tokens] == arr.to_pylist()
    assert len({t[2:14] for t in tokens}) == len(tokens)  # a fresh nonce each


def test_arrow_buffers_out_of_range_are_refused() -> None:
    offsets = bytes(4) + (100).to_bytes(4, "little")  # one value of 100 bytes
    with pytest.raises(ValueError, match="offsets"):
        _batch.hmac_arrow(b"k", b"", None, offsets, b"short", 0, 1, 16)
    with pytest.raises(ValueError, match="offsets"):
        _batch.hmac_arrow(b"k", b"", None, offsets, b"x" * 100, 0, 2, 16)
    with pytest.raises(ValueError, match="validity"):
        _batch.hmac_arrow(b"k", b"", b"", offsets, b"x" * 100, 0, 1, 16)
    with pytest.raises(ValueError, match="offsets"):
        _batch.gcm_arrow(b"k" * 32, b"", b"n" * 12, offsets, b"short", 0, 1, b"")


def test_a_compact_document_decrypts_to_the_json_one_and_an_unknown_layout_is_refused() -> None:
    """The PMI bulk load encrypts the identifiers document in a compact layout; readers get
    the same dictionary as from the JSON tokens written before (and by the row-by-row path),
    and the token is bound to its column like any other."""
    from phiguard.errors import CryptoError

    ring = Keyring(None, {1: b"d" * 32}, 1, b"i" * 32, b"s" * 32)  # type: ignore[arg-type]
    cipher = FieldCipher(ring)
    doc = {
        "hkid": "A1234563",
        "hospital_no": None,
        "name_en": "CHAN Tai Man",
        "name_zh": "陳大文",
        "dob": "1980-02-29",
        "phone": None,
        "address": "Flat 1, Block A",
    }
    head = fields.COMPACT_MARK + b"\x01"
    body = "\x1f".join(v or "" for v in doc.values()).encode()
    compact = cipher.encrypt(head + b"\x1f" + body, b"patient:pii")
    assert cipher.decrypt_json(compact, b"patient:pii") == doc
    assert cipher.decrypt_json(cipher.encrypt_json(doc, b"patient:pii"), b"patient:pii") == doc
    with pytest.raises(CryptoError):
        cipher.decrypt_json(compact, b"account:person")
    for bad in (fields.COMPACT_MARK + b"\x09\x1f" + body, head + b"\x1fonly\x1ftwo"):
        with pytest.raises(CryptoError, match="compact layout"):
            cipher.decrypt_json(cipher.encrypt(bad, b"patient:pii"), b"patient:pii")
