"""Linking leaked records to the patient master index.

Two routes, in this order:

1. **Exact**, through the keyed blind index. A leaked HKID (or hospital number) with a valid
   check character is canonicalised, HMAC'd with the home's index key and looked up in
   ``patients.hkid_bidx`` / ``hospital_no_bidx``. No PMI identifier is decrypted to do this.
   A valid identifier that is *not* in the PMI is a decoy or a stranger: that record is never
   linked to anyone, by any route.
2. **Probabilistic** (:mod:`phiguard.leaks.fuzzy`, Splink on DuckDB) for records without a
   full identifier: masked HKID, romanised or Chinese name, sex, date of birth.

The PMI rows needed to confirm matches and to score fuzzy candidates are decrypted in
memory only, for the duration of the scan; nothing decrypted is written anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from phiguard.app import App
from phiguard.identifiers.hkid import canonical_hkid_fast, parse_hkid
from phiguard.leaks.detectors import LeakRecord, parse_english_name, surname_variants
from phiguard.storage.models import Patient

PII = b"patient:pii"
BATCH = 2000


@dataclass
class Candidate:
    """A PMI row decrypted for this scan (in memory only)."""

    patient_id: str
    sex: str
    birth_year: int | None
    is_canary: bool
    hkid: str | None
    hospital_no: str | None
    name_en: str | None
    name_zh: str | None
    dob: str | None
    phone: str | None


@dataclass
class Link:
    patient_id: str
    matched_on: list[str]
    confidence: float
    is_canary: bool = False
    records: int = 0


@dataclass
class LinkResult:
    links: dict[str, Link] = field(default_factory=dict)
    unmatched: int = 0  # personal records not linked (canary records excluded)
    decoys: int = 0  # records with a valid identifier that is not in the PMI
    fuzzy_tried: int = 0
    fuzzy_linked: int = 0

    @property
    def canaries(self) -> list[str]:
        return sorted(p for p, lk in self.links.items() if lk.is_canary)

    def affected(self) -> list[Link]:
        """Real patients only: canaries never appear in counts or lists."""
        return sorted(
            (lk for lk in self.links.values() if not lk.is_canary),
            key=lambda lk: (-lk.confidence, lk.patient_id),
        )


def _chunks(items: Sequence[Any], n: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def decrypt_rows(app: App, rows: Iterable[Any]) -> list[Candidate]:
    out = []
    for pid, pii, sex, birth_year, canary in rows:
        d = app.cipher.decrypt_json(pii, PII)
        out.append(
            Candidate(
                patient_id=pid,
                sex=sex or "U",
                birth_year=birth_year,
                is_canary=bool(canary),
                hkid=_canon_hkid(d.get("hkid")),
                hospital_no=(d.get("hospital_no") or None),
                name_en=d.get("name_en") or None,
                name_zh=d.get("name_zh") or None,
                dob=d.get("dob") or None,
                phone=(d.get("phone") or None),
            )
        )
    return out


def _canon_hkid(text: str | None) -> str | None:
    if not text:
        return None
    fast = canonical_hkid_fast(text)  # the PMI stores canonical HKIDs: this is the usual path
    if fast is not None:
        return fast
    try:
        return parse_hkid(text).canonical
    except Exception:
        return None


PMI_COLUMNS = (Patient.patient_id, Patient.pii, Patient.sex, Patient.birth_year, Patient.is_canary)


def load_patients(app: App, ids: Sequence[str]) -> dict[str, Candidate]:
    out: dict[str, Candidate] = {}
    with app.session() as s:
        for part in _chunks(sorted(set(ids))):
            rows = s.execute(select(*PMI_COLUMNS).where(Patient.patient_id.in_(part))).all()
            out.update({c.patient_id: c for c in decrypt_rows(app, rows)})
    return out


def lookup_rows(app: App, kind: str, values: Iterable[str]) -> dict[str, Candidate]:
    """value -> the decrypted PMI row whose keyed digest it matches: the look-up and the row in
    one query (half the round trips of :func:`lookup` then :func:`load_patients`)."""
    column = Patient.hkid_bidx if kind == "hkid" else Patient.hospital_no_bidx
    by_digest = {app.blind.digest(kind, v): v for v in set(values)}
    found: dict[str, Candidate] = {}
    with app.session() as s:
        for part in _chunks(list(by_digest)):
            rows = s.execute(select(column, *PMI_COLUMNS).where(column.in_(part))).all()
            for dig, cand in zip(
                (r[0] for r in rows), decrypt_rows(app, (r[1:] for r in rows)), strict=True
            ):
                found[by_digest[bytes(dig or b"")]] = cand
    return found


def lookup(app: App, kind: str, values: Iterable[str]) -> dict[str, str]:
    """value -> patient_id for the values whose keyed digest is in the PMI."""
    column = Patient.hkid_bidx if kind == "hkid" else Patient.hospital_no_bidx
    by_digest = {app.blind.digest(kind, v): v for v in set(values)}
    found: dict[str, str] = {}
    with app.session() as s:
        for part in _chunks(list(by_digest)):
            for pid, dig in s.execute(select(Patient.patient_id, column).where(column.in_(part))):
                found[by_digest[bytes(dig or b"")]] = pid
    return found


def agreement(rec: LeakRecord, c: Candidate) -> tuple[list[str], list[str]]:
    """Fields of the record that agree / disagree with the decrypted PMI row."""
    agree: list[str] = []
    differ: list[str] = []
    if rec.name_en is not None and c.name_en:
        # fast path: the same letters (any order, spacing, hyphens) is the same name
        letters = "".join(sorted(ch for ch in c.name_en.upper() if "A" <= ch <= "Z"))
        same = letters == rec.name_en.token_key
        if not same:
            pmi = parse_english_name(c.name_en)
            same = pmi is not None and (
                rec.name_en.token_key == pmi.token_key
                or (
                    bool(surname_variants(rec.name_en.surname) & surname_variants(pmi.surname))
                    and rec.name_en.given == pmi.given
                )
            )
        (agree if same else differ).append("name_en")
    if rec.name_zh and c.name_zh:
        (agree if rec.name_zh == c.name_zh else differ).append("name_zh")
    if rec.sex and rec.sex != "U" and c.sex in {"M", "F"}:
        (agree if rec.sex == c.sex else differ).append("sex")
    if rec.dob and c.dob:
        (agree if rec.dob == c.dob else differ).append("dob")
    if rec.phone and c.phone:
        (
            agree if rec.phone == "".join(ch for ch in c.phone if ch.isdigit())[-8:] else differ
        ).append("phone")
    return agree, differ


class Linker:
    def __init__(
        self,
        app: App,
        *,
        fuzzy: bool = True,
        trace: list[tuple[int, str, float]] | None = None,
        engine: str | None = None,
    ) -> None:
        self.app = app
        self.fuzzy = fuzzy
        self.engine = engine  # where Splink runs; None: the engine setting
        self.trace = trace  # scored fuzzy pairs, for calibration checks (bench, tests)

    def link(self, records: list[LeakRecord]) -> LinkResult:
        result = LinkResult()
        hk = lookup_rows(self.app, "hkid", (r.hkid for r in records if r.hkid))
        # a hospital number is looked up only where there is no HKID; beside an HKID it is
        # compared with the linked row (the PMI holds both in the canonical form of the index)
        alone = (r.hospital_no for r in records if r.hospital_no and not r.hkid)
        hn = lookup_rows(self.app, "hospital_no", alone)
        rest: list[LeakRecord] = []
        for rec in records:
            if rec.hkid:
                cand = hk.get(rec.hkid)
                if cand is None:
                    result.decoys += 1  # a real-looking HKID that is nobody here: never linked
                    continue
                on = ["hkid"]
                if rec.hospital_no and rec.hospital_no == cand.hospital_no:
                    on.append("hospital_no")
            elif rec.hospital_no:
                cand = hn.get(rec.hospital_no)
                if cand is None:
                    result.decoys += 1
                    continue
                on = ["hospital_no"]
            else:
                rest.append(rec)
                continue
            agree, differ = agreement(rec, cand)
            conf = 1.0 if not differ else 0.9 if len(differ) == 1 else 0.75
            self._add(result, cand.patient_id, on + agree, conf, cand.is_canary)
        if self.fuzzy and rest:
            from phiguard.leaks.fuzzy import fuzzy_link

            usable = [r for r in rest if (r.name_en or r.name_zh)]
            result.fuzzy_tried = len(usable)
            matches = fuzzy_link(self.app, usable, trace=self.trace, engine=self.engine)
            for m in matches:
                self._add(
                    result,
                    m.candidate.patient_id,
                    m.matched_on,
                    min(m.probability, 0.9999),
                    m.candidate.is_canary,
                )
            result.fuzzy_linked = len(matches)
            result.unmatched += len(rest) - len(matches)
        else:
            result.unmatched += len(rest)
        result.unmatched += result.decoys
        return result

    @staticmethod
    def _add(result: LinkResult, pid: str, on: list[str], conf: float, canary: bool) -> None:
        lk = result.links.get(pid)
        if lk is None:
            result.links[pid] = Link(pid, list(dict.fromkeys(on)), round(conf, 4), canary, 1)
            return
        lk.records += 1
        lk.matched_on = list(dict.fromkeys(lk.matched_on + on))
        lk.confidence = max(lk.confidence, round(conf, 4))
