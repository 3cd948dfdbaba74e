"""Row converters for each kind of reference data: input row → database values.

A converter raises ``ValueError(reason)`` for a bad row. Identifiers and names leave here
only as an AES-GCM token (``pii`` / ``person``) and keyed blind indexes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import InputError
from phiguard.identifiers.hkid import canonical_hkid_fast, parse_hkid
from phiguard.storage import normalise as n
from phiguard.storage.models import Account, Contract, Encounter, Grant, Patient, Vendor

Row = dict[str, str | None]


@dataclass
class KindSpec:
    model: type
    key: str
    noun: str
    required: tuple[str, ...]
    convert: Callable[[Row], dict[str, Any]]
    tag: Tag
    unique: dict[str, str] = field(default_factory=dict)  # column -> what it is, for messages
    preserve: frozenset[str] = frozenset()  # columns an update must not overwrite (e.g. status)
    after_write: list[Callable[[Connection, list[dict[str, Any]]], None]] = field(
        default_factory=list
    )


def _mac(app: App, kind: str, row: Row, columns: tuple[str, ...]) -> bytes:
    canonical = json.dumps([(row.get(c) or "").strip() for c in columns], ensure_ascii=False)
    return app.blind.digest(f"row:{kind}", canonical)


def _patients(app: App) -> KindSpec:
    # This converter is the hot path of a 7.5-million-row PMI load, so it avoids helper
    # layers: one fast HKID check, one JSON document for all identifiers, one AES-GCM call
    # and HMACs only for the values phiguard must look up.
    digest, encrypt, hn = app.blind.digest, app.cipher.encrypt, app.hospital_no_format
    clusters, sexes = n.CLUSTERS, n.SEXES
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def convert(row: Row) -> dict[str, Any]:
        get = row.get
        pid = (get("patient_id") or "").strip()
        if not pid:
            raise ValueError("patient_id is empty")
        hkid = None
        if raw := (get("hkid") or "").strip():
            hkid = canonical_hkid_fast(raw)
            if hkid is None:
                _hkid_reason(raw)
        hospital_no = None
        if raw := (get("hospital_no") or "").strip():
            try:
                hospital_no = hn.normalise(raw)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        name_en = (get("name_en") or "").strip()
        if not name_en:
            raise ValueError("name_en is empty")
        name_zh = (get("name_zh") or "").strip() or None
        dob = n.iso_date(get("dob"), "dob")
        phone = n.phone(get("phone"))
        address = (get("address") or "").strip() or None
        sex = (get("sex") or "U").strip().upper() or "U"
        if sex not in sexes:
            raise ValueError("sex is not M, F or U")
        cluster = (get("cluster") or "").strip().upper()
        if cluster not in clusters:
            n.cluster(cluster)  # raises with the list of clusters
        app_registered = n.boolean(get("app_registered"), "app_registered")
        vip = n.boolean(get("vip"), "vip")
        surname = n.surname(name_en)
        akey = n.address_key(address)
        dob_s = dob.isoformat() if dob else None
        pii = dumps(
            {
                "hkid": hkid,
                "hospital_no": hospital_no,
                "name_en": name_en,
                "name_zh": name_zh,
                "dob": dob_s,
                "phone": phone,
                "address": address,
            }
        ).encode()
        plain = f"{pid}\x1f{sex}\x1f{cluster}\x1f{app_registered:d}{vip:d}"
        return {
            "patient_id": pid,
            "pii": encrypt(pii, b"patient:pii"),
            "hkid_bidx": digest("hkid", hkid) if hkid else None,
            "hospital_no_bidx": digest("hospital_no", hospital_no) if hospital_no else None,
            "surname_bidx": digest("surname", surname) if surname else None,
            "address_bidx": digest("address", akey) if akey else None,
            "sex": sex,
            "birth_year": dob.year if dob else None,
            "cluster": cluster,
            "has_phone": phone is not None,
            "has_address": address is not None,
            "app_registered": app_registered,
            "vip": vip,
            "is_canary": False,
            # the fingerprint of everything this row says, keyed (it covers identifiers)
            "row_mac": digest("row:patients", plain + "\x1f" + pii.decode()),
        }

    return KindSpec(
        model=Patient,
        key="patient_id",
        noun="patient",
        tag=Tag.IMPORT_PATIENTS,
        required=("patient_id", "name_en", "sex", "cluster"),
        convert=convert,
        unique={"hkid_bidx": "HKID", "hospital_no_bidx": "hospital number"},
        preserve=frozenset({"is_canary"}),
    )


def _hkid_reason(raw: str) -> None:
    """Raise the precise reason a value that failed the fast check is not a usable HKID."""
    try:
        parsed = parse_hkid(raw)
    except InputError:
        raise ValueError("hkid has the wrong shape") from None
    if parsed.masked:
        raise ValueError("hkid is masked; the PMI needs the full number")
    raise ValueError("hkid check character is wrong")


ACCOUNT_COLUMNS = (
    "account_id",
    "person_name",
    "employer",
    "role",
    "department",
    "cluster",
    "active_from",
    "active_to",
    "patient_id",
    "home_address",
)


def _accounts(app: App) -> KindSpec:
    blind, cipher = app.blind, app.cipher

    def convert(row: Row) -> dict[str, Any]:
        person_name = n.optional(row, "person_name")
        home_address = n.optional(row, "home_address")
        active_from = n.iso_date(row.get("active_from"), "active_from")
        active_to = n.iso_date(row.get("active_to"), "active_to")
        if active_from and active_to and active_to < active_from:
            raise ValueError("active_to is before active_from")
        surname = n.surname(person_name)
        akey = n.address_key(home_address)
        person = None
        if person_name or home_address:
            person = cipher.encrypt_json(
                {"person_name": person_name, "home_address": home_address}, b"account:person"
            )
        return {
            "account_id": n.required(row, "account_id"),
            "person": person,
            "surname_bidx": blind.digest("surname", surname) if surname else None,
            "address_bidx": blind.digest("address", akey) if akey else None,
            "employer": n.required(row, "employer"),
            "role": n.required(row, "role").lower(),
            "department": (n.optional(row, "department") or "").upper(),
            "cluster": n.cluster(row.get("cluster"), allow_all=True),
            "active_from": active_from,
            "active_to": active_to,
            "patient_id": n.optional(row, "patient_id"),
            "status": "active",
            "row_mac": _mac(app, "accounts", row, ACCOUNT_COLUMNS),
        }

    return KindSpec(
        model=Account,
        key="account_id",
        noun="account",
        tag=Tag.IMPORT_ACCOUNTS,
        required=("account_id", "employer", "role", "cluster"),
        convert=convert,
        preserve=frozenset({"status"}),
    )


VENDOR_COLUMNS = (
    "vendor_id",
    "name",
    "contract_id",
    "contract_start",
    "contract_end",
    "dpa_signed",
    "last_assessment",
)


def _vendors(app: App) -> KindSpec:
    def convert(row: Row) -> dict[str, Any]:
        start = n.iso_date(row.get("contract_start"), "contract_start")
        end = n.iso_date(row.get("contract_end"), "contract_end")
        contract_id = n.optional(row, "contract_id")
        if contract_id and start is None:
            raise ValueError("contract_start is empty")
        if start and end and end < start:
            raise ValueError("contract_end is before contract_start")
        return {
            "vendor_id": n.required(row, "vendor_id"),
            "name": n.required(row, "name"),
            "dpa_signed": n.boolean(row.get("dpa_signed"), "dpa_signed"),
            "last_assessment": n.iso_date(row.get("last_assessment"), "last_assessment"),
            "status": "active",
            "row_mac": _mac(app, "vendors", row, VENDOR_COLUMNS),
            "_contract": (contract_id, start, end),
        }

    def write_contracts(conn: Connection, rows: list[dict[str, Any]]) -> None:
        contracts = [
            {
                "contract_id": c[0],
                "vendor_id": r["vendor_id"],
                "start": c[1],
                "end": c[2],
                "dpa_signed": r["dpa_signed"],
            }
            for r in rows
            if (c := r["_contract"])[0]
        ]
        if contracts:
            _upsert(conn, Contract.__table__, contracts, "contract_id")

    spec = KindSpec(
        model=Vendor,
        key="vendor_id",
        noun="vendor",
        tag=Tag.IMPORT_VENDORS,
        required=("vendor_id", "name"),
        convert=convert,
        preserve=frozenset({"status"}),
        after_write=[write_contracts],
    )
    return spec


GRANT_COLUMNS = (
    "grant_id",
    "account_id",
    "scope_cluster",
    "scope_fields",
    "actions",
    "max_rows",
    "valid_from",
    "valid_to",
    "purpose",
    "approved_by",
)


def _grants(app: App) -> KindSpec:
    def convert(row: Row) -> dict[str, Any]:
        valid_from = n.timestamp(row.get("valid_from"), "valid_from")
        valid_to = n.timestamp(row.get("valid_to"), "valid_to")
        if valid_to <= valid_from:
            raise ValueError("valid_to is not after valid_from")
        try:
            max_rows = int(n.required(row, "max_rows"))
        except ValueError as exc:
            raise ValueError(
                "max_rows is not a whole number" if "empty" not in str(exc) else str(exc)
            ) from None
        if max_rows < 0:
            raise ValueError("max_rows is negative")
        return {
            "grant_id": n.required(row, "grant_id"),
            "account_id": n.required(row, "account_id"),
            "scope_cluster": n.cluster(row.get("scope_cluster"), "scope_cluster", allow_all=True),
            "scope_fields": n.csv_list(row.get("scope_fields"), "scope_fields"),
            "actions": n.csv_list(row.get("actions"), "actions", n.ACTIONS),
            "max_rows": max_rows,
            "valid_from": valid_from,
            "valid_to": valid_to,
            "purpose": (n.optional(row, "purpose") or "").upper(),
            "approved_by": n.optional(row, "approved_by"),
            "status": "active",
            "origin": "import",
            "row_mac": _mac(app, "grants", row, GRANT_COLUMNS),
        }

    return KindSpec(
        model=Grant,
        key="grant_id",
        noun="grant",
        tag=Tag.IMPORT_GRANTS,
        required=(
            "grant_id",
            "account_id",
            "scope_cluster",
            "scope_fields",
            "actions",
            "max_rows",
            "valid_from",
            "valid_to",
        ),
        convert=convert,
        preserve=frozenset({"status", "origin"}),
    )


ENCOUNTER_COLUMNS = ("patient_id", "department", "account_id", "start", "end")


def _encounters(app: App) -> KindSpec:
    def convert(row: Row) -> dict[str, Any]:
        start = n.timestamp(row.get("start"), "start")
        end = n.timestamp(row.get("end"), "end") if n.optional(row, "end") else None
        if end is not None and end < start:
            raise ValueError("end is before start")
        values: dict[str, Any] = {
            "patient_id": n.required(row, "patient_id"),
            "department": n.required(row, "department").upper(),
            "account_id": n.optional(row, "account_id"),
            "start": start,
            "end": end,
        }
        canonical = json.dumps(
            [
                values["patient_id"],
                values["department"],
                values["account_id"] or "",
                start.isoformat(),
                end.isoformat() if end else "",
            ]
        )
        values["encounter_key"] = app.blind.digest("encounter", canonical)
        return values

    return KindSpec(
        model=Encounter,
        key="encounter_key",
        noun="encounter",
        tag=Tag.IMPORT_ENCOUNTERS,
        required=("patient_id", "department", "start"),
        convert=convert,
    )


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]], key: str) -> None:
    dialect = conn.dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    cols = {c: ins.excluded[c] for c in rows[0] if c != key}
    conn.execute(ins.on_conflict_do_update(index_elements=[key], set_=cols), rows)


_BUILDERS: dict[str, Callable[[App], KindSpec]] = {
    "patients": _patients,
    "accounts": _accounts,
    "vendors": _vendors,
    "grants": _grants,
    "encounters": _encounters,
}


def spec_for(kind: str, app: App) -> KindSpec:
    return _BUILDERS[kind](app)


__all__ = ["KindSpec", "spec_for"]
