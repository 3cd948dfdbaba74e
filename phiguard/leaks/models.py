"""Leak-scanner tables: scan records, their affected sets, the canary registry, and the
one-time-code challenges of the patient-facing check.

Nothing here holds an identifier in plaintext: affected sets are lists of ``patient_id``;
a check challenge keeps only the keyed blind index of the HKID it was asked for and an HMAC
of its one-time code.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime


class LeakScan(Base):
    """Who scanned what, when, and a digest of the result they saw."""

    __tablename__ = "leak_scans"

    scan_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    started: Mapped[datetime] = mapped_column(UTCDateTime)
    finished: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    files: Mapped[str] = mapped_column(Text)  # JSON: [{path, bytes, sha256, format, records}]
    result_sha256: Mapped[str] = mapped_column(String(64))
    affected_count: Mapped[int] = mapped_column(Integer)
    unmatched: Mapped[int] = mapped_column(Integer)
    fields_exposed: Mapped[str] = mapped_column(String(200))
    attribution: Mapped[str] = mapped_column(Text)  # JSON: the ranked entries (ids only)
    top_account: Mapped[str | None] = mapped_column(String(64))
    top_query: Mapped[str | None] = mapped_column(String(64))
    top_vendor: Mapped[str | None] = mapped_column(String(64))


class LeakScanPatient(Base):
    """One affected patient of a scan (canaries are never listed here)."""

    __tablename__ = "leak_scan_patients"

    scan_id: Mapped[str] = mapped_column(ForeignKey("leak_scans.scan_id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    confidence: Mapped[float] = mapped_column(Float)
    matched_on: Mapped[str] = mapped_column(String(160))


class LeakCanary(Base):
    """A fictitious patient planted for one recipient (a vendor, an account, an export)."""

    __tablename__ = "leak_canaries"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(64))
    query_id: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    planted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    planted_by: Mapped[str] = mapped_column(String(128))


class LeakLinkKey(Base):
    """Keyed blind index of each patient's date of birth, for probabilistic linkage.

    ``patients`` has a plaintext birth *year* only; with thousands of masked records a
    surname-and-year fetch ends up decrypting most of the PMI. This index lets the scanner
    fetch exactly the patients with a leaked record's surname group and date of birth.
    ``row_mac`` is the patient row's own MAC when the key was made: a re-imported, changed
    row is re-keyed. Built lazily by :mod:`phiguard.leaks.linkindex`.
    """

    __tablename__ = "leak_link_keys"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    row_mac: Mapped[bytes] = mapped_column(LargeBinary(16))
    dob_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16), index=True)


class LeakCheckChallenge(Base):
    """A "was my data in a leak?" request awaiting its one-time code."""

    __tablename__ = "leak_check_challenges"

    challenge_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    subject_bidx: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    code_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
