"""Reference data: the patient master index, accounts, vendors, contracts, grants, encounters.

Identifiers and names never reach a column in plaintext. Each row that carries them holds
one AES-GCM token (``pii`` / ``person``) with the JSON of those fields, plus keyed blind
indexes (16-byte HMACs) for the lookups phiguard needs: HKID, hospital number, surname and
address. ``row_mac`` is an HMAC of the canonical input row, which makes re-imports idempotent
without decrypting anything: an unchanged row is recognised and left alone.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime

Bidx = LargeBinary(16)


class Patient(Base):
    __tablename__ = "patients"
    # one household index serves surname look-ups and the surname-and-address join
    __table_args__ = (Index("ix_patients_surname_address", "surname_bidx", "address_bidx"),)

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pii: Mapped[bytes] = mapped_column(LargeBinary)
    hkid_bidx: Mapped[bytes | None] = mapped_column(Bidx, unique=True, index=True)
    hospital_no_bidx: Mapped[bytes | None] = mapped_column(Bidx, unique=True, index=True)
    surname_bidx: Mapped[bytes | None] = mapped_column(Bidx)
    address_bidx: Mapped[bytes | None] = mapped_column(Bidx)
    sex: Mapped[str] = mapped_column(String(1))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    cluster: Mapped[str] = mapped_column(String(8))
    has_phone: Mapped[bool] = mapped_column(Boolean, default=False)
    has_address: Mapped[bool] = mapped_column(Boolean, default=False)
    app_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    is_canary: Mapped[bool] = mapped_column(Boolean, default=False)
    row_mac: Mapped[bytes] = mapped_column(Bidx)


class Vendor(Base):
    __tablename__ = "vendors"

    vendor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dpa_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_assessment: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    row_mac: Mapped[bytes] = mapped_column(Bidx)


class Contract(Base):
    __tablename__ = "contracts"

    contract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.vendor_id"), index=True)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    dpa_signed: Mapped[bool] = mapped_column(Boolean, default=False)


class Account(Base):
    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person: Mapped[bytes | None] = mapped_column(LargeBinary)
    surname_bidx: Mapped[bytes | None] = mapped_column(Bidx, index=True)
    address_bidx: Mapped[bytes | None] = mapped_column(Bidx, index=True)
    employer: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[str] = mapped_column(String(8))
    active_from: Mapped[date | None] = mapped_column(Date)
    active_to: Mapped[date | None] = mapped_column(Date)
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    row_mac: Mapped[bytes] = mapped_column(Bidx)

    @property
    def vendor_id(self) -> str | None:
        return None if self.employer == "HA" else self.employer


class Grant(Base):
    __tablename__ = "grants"

    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    scope_cluster: Mapped[str] = mapped_column(String(8))
    scope_fields: Mapped[str] = mapped_column(Text)
    actions: Mapped[str] = mapped_column(Text)
    max_rows: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime)
    purpose: Mapped[str] = mapped_column(String(16))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    origin: Mapped[str] = mapped_column(String(16), default="import")
    row_mac: Mapped[bytes | None] = mapped_column(Bidx)


class Encounter(Base):
    __tablename__ = "encounters"
    __table_args__ = (Index("ix_encounters_patient_start", "patient_id", "start"),)

    encounter_key: Mapped[bytes] = mapped_column(Bidx, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportRun(Base):
    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    started: Mapped[datetime] = mapped_column(UTCDateTime)
    finished: Mapped[datetime] = mapped_column(UTCDateTime)
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_bad: Mapped[int] = mapped_column(Integer)
    inserted: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    strict: Mapped[bool] = mapped_column(Boolean)
    committed: Mapped[bool] = mapped_column(Boolean)
