"""Probabilistic linkage of records without a full identifier (Splink on DuckDB or Spark).

A masked HKID (``A123***(3)``), a romanised or Chinese name, sex and date of birth together
usually point to one patient, but no single field does. This is the Fellegi-Sunter model as
Splink implements it, with three phiguard-specific choices:

* **Candidates come from the blind index, not from decrypting the PMI.** The leaked surname
  (and its romanisation variants — CHAN/CHEN, WONG/WANG/HUANG — or the romanisations of a
  Chinese surname) is HMAC'd and looked up in ``patients.surname_bidx``, narrowed by the
  plaintext ``birth_year`` (±1). Only those rows are decrypted, in memory.
* **Surname groups, not spellings, are the blocking key.** Each record is blocked under every
  Chinese surname its spelling may stand for, so a variant spelling is compared at all.
* **Fixed, documented m/u probabilities** (see ``docs/dev/leaks.md``) rather than EM on each
  dump: a dump has no labels and is often too small to train on; the prior is one true match
  in the whole PMI (``1 / N``), so the output is a posterior probability per pair that the
  labelled benchmarks check for calibration.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import func, or_, select

from phiguard.app import App
from phiguard.leaks.detectors import (
    LeakRecord,
    parse_english_name,
    surname_roots,
    surname_table,
)
from phiguard.leaks.linkage import PMI_COLUMNS, Candidate, decrypt_rows
from phiguard.leaks.models import LeakLinkKey
from phiguard.leaks.splink_db import JARO_WINKLER, backend, check_engine
from phiguard.storage.models import Patient

ACCEPT = 0.90  # link when the best candidate is at least this probable …
AMBIGUOUS = 0.50  # … and no other candidate for the same record reaches this


@dataclass
class FuzzyMatch:
    record: int
    candidate: Candidate
    probability: float
    matched_on: list[str]


def _roots_of_record(rec: LeakRecord) -> set[str]:
    roots: set[str] = set()
    if rec.name_en is not None:
        roots |= surname_roots(rec.name_en.surname)
        if rec.name_en.other:
            roots |= surname_roots(rec.name_en.other)
    if rec.name_zh:
        _, by_zh = surname_table()
        head = rec.name_zh[:2] if rec.name_zh[:2] in by_zh else rec.name_zh[:1]
        roots |= surname_roots(head)
    return roots


def _spellings(root: str) -> set[str]:
    _, by_zh = surname_table()
    romans = by_zh.get(root, {root})
    out: set[str] = set()
    for r in romans:
        if r.isascii():
            out |= {r, r.replace("-", " "), r.replace("-", "")}
    return out


ROUND2_CAP = 250_000  # a year-based fetch larger than this is skipped (reported as unmatched)


def pmi_size(app: App) -> int:
    with app.session() as s:
        return int(s.execute(select(func.count()).select_from(Patient)).scalar_one())


def _swapped(dob: str) -> str | None:
    y, m, d = dob.split("-")
    if m == d or int(d) > 12:
        return None
    return f"{y}-{d}-{m}"


def fetch_by_dob(app: App, records: list[LeakRecord]) -> list[Candidate]:
    """Round 1: patients with a record's surname group and date of birth (or the date with
    day and month swapped), through the surname + date-of-birth blind index: one digest per
    spelling of the group and date, so the index returns exactly those patients."""
    from phiguard.leaks.linkindex import link_digest

    wanted: set[bytes] = set()
    for rec in records:
        if not rec.dob:
            continue
        dobs = {rec.dob} | ({_swapped(rec.dob)} - {None})
        for root in _roots_of_record(rec):
            wanted |= {link_digest(app, sp, d) for sp in _spellings(root) for d in dobs if d}
    rows: dict[str, Any] = {}
    keys = sorted(wanted)
    with app.session() as s:
        for i in range(0, len(keys), 500):
            q = (
                select(*PMI_COLUMNS)
                .join(LeakLinkKey, LeakLinkKey.patient_id == Patient.patient_id)
                .where(LeakLinkKey.dob_bidx.in_(keys[i : i + 500]))
            )
            for row in s.execute(q):
                rows[row[0]] = tuple(row)
    return decrypt_rows(app, rows.values())


def fetch_by_year(app: App, records: list[LeakRecord]) -> tuple[list[Candidate], set[str]]:
    """Round 2 for records round 1 could not settle (no or mistyped date of birth): patients
    with the surname group born within a year of the record (any year when it has no date).
    Returns the candidates and the surname groups skipped as too large to decrypt."""
    years: dict[str, set[int] | None] = {}
    for rec in records:
        want = {int(rec.dob[:4]) + d for d in (-1, 0, 1)} if rec.dob else None
        for root in _roots_of_record(rec):
            if root in years and years[root] is None:
                continue
            years[root] = None if want is None else (years.get(root) or set()) | want
    rows: dict[str, Any] = {}
    skipped: set[str] = set()
    with app.session() as s:
        for root, ys in years.items():
            digests = [app.blind.digest("surname", sp) for sp in _spellings(root)]
            where: list[Any] = [Patient.surname_bidx.in_(digests)]
            if ys is not None:
                where.append(or_(Patient.birth_year.in_(sorted(ys)), Patient.birth_year.is_(None)))
            size = s.execute(select(func.count()).select_from(Patient).where(*where)).scalar_one()
            if size > ROUND2_CAP:
                skipped.add(root)
                continue
            for row in s.execute(select(*PMI_COLUMNS).where(*where)):
                rows[row[0]] = tuple(row)
    return decrypt_rows(app, rows.values()), skipped


# -- the Splink model ---------------------------------------------------------------------
def _lvl(sql: str, label: str, m: float, u: float) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, "m_probability": m, "u_probability": u}


def _null(sql: str) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": "null", "is_null_level": True}


def _comparisons(engine: str = "duckdb") -> list[Any]:
    jw = JARO_WINKLER[engine]
    hk_compat = "(hkid_l LIKE hkid_r OR hkid_r LIKE hkid_l)"
    known = "least(hkid_known_l, hkid_known_r)"
    return [
        {
            "output_column_name": "hkid",
            "comparison_levels": [
                _null("hkid_l IS NULL OR hkid_r IS NULL"),
                _lvl(
                    f"{hk_compat} AND {known} >= 4", "masked HKID fits, 4+ digits shown", 0.99, 1e-6
                ),
                _lvl(
                    f"{hk_compat} AND {known} >= 2",
                    "masked HKID fits, 2-3 digits shown",
                    0.99,
                    1e-4,
                ),
                _lvl(hk_compat, "masked HKID fits, letters/check only", 0.99, 1e-2),
                _lvl("ELSE", "masked HKID does not fit", 0.01, 0.99),
            ],
        },
        {
            "output_column_name": "name_en",
            "comparison_levels": [
                _null("given_l IS NULL OR given_r IS NULL"),
                _lvl("surname_l = surname_r AND given_l = given_r", "exact", 0.80, 4e-5),
                _lvl("given_l = given_r", "surname variant, same given name", 0.08, 1e-5),
                _lvl("anagram_l = anagram_r", "same letters, other order", 0.04, 1e-5),
                _lvl(f"{jw}(given_l, given_r) >= 0.9", "given ~0.9", 0.05, 1e-4),
                _lvl(
                    f"{jw}(given_l, given_r) >= 0.75",
                    "given ~0.75",
                    0.02,
                    6e-4,
                ),
                _lvl("ELSE", "same surname group, other given name", 0.01, 0.03),
            ],
        },
        {
            "output_column_name": "name_zh",
            "comparison_levels": [
                _null("name_zh_l IS NULL OR name_zh_r IS NULL"),
                _lvl("name_zh_l = name_zh_r", "exact", 0.90, 5e-5),
                _lvl(
                    "levenshtein(name_zh_l, name_zh_r) <= 1",
                    "one character differs",
                    0.07,
                    2e-3,
                ),
                _lvl("ELSE", "different", 0.03, 0.998),
            ],
        },
        {
            "output_column_name": "sex",
            "comparison_levels": [
                _null("sex_l IS NULL OR sex_r IS NULL"),
                _lvl("sex_l = sex_r", "same", 0.98, 0.5),
                _lvl("ELSE", "different", 0.02, 0.5),
            ],
        },
        {
            "output_column_name": "dob",
            "comparison_levels": [
                _null("dob_l IS NULL OR dob_r IS NULL"),
                _lvl("dob_l = dob_r", "exact", 0.88, 3e-5),
                _lvl(
                    "substr(dob_l,1,4) = substr(dob_r,1,4) "
                    "AND substr(dob_l,6,2) = substr(dob_r,9,2) "
                    "AND substr(dob_l,9,2) = substr(dob_r,6,2)",
                    "day and month swapped",
                    0.02,
                    3e-5,
                ),
                _lvl("levenshtein(dob_l, dob_r) <= 1", "one digit differs", 0.05, 6e-4),
                _lvl("substr(dob_l,1,4) = substr(dob_r,1,4)", "same year", 0.02, 0.011),
                _lvl("ELSE", "different", 0.03, 0.988),
            ],
        },
        {
            "output_column_name": "phone",
            "comparison_levels": [
                _null("phone_l IS NULL OR phone_r IS NULL"),
                _lvl("phone_l = phone_r", "exact", 0.70, 1e-6),
                _lvl("ELSE", "different", 0.30, 1.0),
            ],
        },
    ]


_BLOCKING = [
    "l.root = r.root AND l.sex = r.sex AND l.birth_year = r.birth_year",
    "l.root = r.root AND l.dob = r.dob",
    "l.root = r.root AND l.hkid_pc = r.hkid_pc",
    "l.root = r.root AND l.given = r.given",
    "l.root = r.root AND l.name_zh = r.name_zh",
]


def _hkid_fields(pattern: str | None) -> tuple[str | None, int, str | None]:
    if not pattern:
        return None, 0, None
    prefix = pattern.rstrip("0123456789A_")
    if not prefix:
        prefix = pattern[:1]
    digits = pattern[len(prefix) : len(prefix) + 6]
    check = pattern[-1]
    known = sum(c.isdigit() for c in digits)
    return pattern, known, (prefix + check) if check != "_" else None


def _record_rows(records: list[LeakRecord]) -> list[dict[str, Any]]:
    rows = []
    for i, rec in enumerate(records):
        pattern = rec.hkid_masked or (rec.hkid_typo[:-1] + "_" if rec.hkid_typo else None)
        hk, known, pc = _hkid_fields(pattern)
        name = rec.name_en
        base = {
            "hkid": hk,
            "hkid_known": known,
            "hkid_pc": pc,
            "surname": name.surname if name else None,
            "given": (name.given or None) if name else None,
            "anagram": name.token_key if name else None,
            "name_zh": rec.name_zh,
            "sex": rec.sex if rec.sex in {"M", "F"} else None,
            "birth_year": int(rec.dob[:4]) if rec.dob else None,
            "dob": rec.dob,
            "phone": rec.phone,
        }
        for root in _roots_of_record(rec):
            rows.append({"uid": f"L{i}#{root}", "root": root, **base})
    return rows


def _candidate_rows(cands: list[Candidate]) -> list[dict[str, Any]]:
    _, by_zh = surname_table()
    rows = []
    for c in cands:
        name = parse_english_name(c.name_en) if c.name_en else None
        roots: set[str] = set()
        if name:
            roots |= surname_roots(name.surname)
        if c.name_zh:
            head = c.name_zh[:2] if c.name_zh[:2] in by_zh else c.name_zh[:1]
            roots |= surname_roots(head)
        base = {
            "hkid": c.hkid,
            "hkid_known": 9 if c.hkid else 0,
            "hkid_pc": (c.hkid[:-7] + c.hkid[-1]) if c.hkid else None,
            "surname": name.surname if name else None,
            "given": (name.given or None) if name else None,
            "anagram": name.token_key if name else None,
            "name_zh": c.name_zh,
            "sex": c.sex if c.sex in {"M", "F"} else None,
            "birth_year": c.birth_year,
            "dob": c.dob,
            "phone": "".join(ch for ch in c.phone if ch.isdigit())[-8:] if c.phone else None,
        }
        for root in roots:
            rows.append({"uid": f"{c.patient_id}#{root}", "root": root, **base})
    return rows


def score_pairs(
    left: list[dict[str, Any]],
    right: list[dict[str, Any]],
    n_pmi: int,
    *,
    engine: str = "duckdb",
    settings: Any = None,
) -> list[dict[str, Any]]:
    """Splink predictions (match_probability and the comparison levels) above 1%, computed
    on ``engine`` ('duckdb' in process, or 'spark')."""
    from splink import Linker, SettingsCreator

    with backend(engine, settings) as register:
        lt = register(left, "leak")
        rt = register(right, "pmi")
        model = SettingsCreator(
            link_type="link_only",
            unique_id_column_name="uid",
            comparisons=_comparisons(engine),
            blocking_rules_to_generate_predictions=[{"blocking_rule": b} for b in _BLOCKING],
            probability_two_random_records_match=1.0 / max(n_pmi, 1),
            retain_matching_columns=False,
            retain_intermediate_calculation_columns=True,
        )
        linker = Linker([lt, rt], model, log_level=None)
        df = linker.inference.predict(threshold_match_probability=0.01)
        out = df.as_pandas_dataframe().to_dict("records")
        df.drop_table_from_database_and_remove_from_cache()
        return out


# A comparison counts as "matched on" when its match weight (log2 Bayes factor) is at least
# this: the exact and near-exact levels, not the weak ones (same birth year, one CJK char off).
_ON = {
    "mw_hkid": ("hkid_masked", 0.0),
    "mw_name_en": ("name_en", 8.5),
    "mw_name_zh": ("name_zh", 10.0),
    "mw_sex": ("sex", 0.0),
    "mw_dob": ("dob", 10.0),
    "mw_phone": ("phone", 0.0),
}


def fuzzy_link(
    app: App,
    records: list[LeakRecord],
    *,
    trace: list[tuple[int, str, float]] | None = None,
    engine: str | None = None,
) -> list[FuzzyMatch]:
    """Links for the records that one candidate explains; ``trace`` (if given) receives every
    scored pair ``(record index, patient id, probability)`` for calibration checks. Splink
    runs on ``engine`` (default: the ``engine`` setting, as for detection).

    Round 1 compares each record with the patients of its surname group and date of birth
    (a few each, found through blind indexes); round 2 takes the records still unsettled and
    compares them with their surname group within a year of birth.
    """
    if not records:
        return []
    name = check_engine(engine or app.settings.engine)
    from phiguard.leaks.linkindex import refresh

    refresh(app, full=False)
    score = partial(score_pairs, n_pmi=pmi_size(app), engine=name, settings=app.settings)
    matched: dict[int, FuzzyMatch] = {}
    ambiguous: set[int] = set()
    first = fetch_by_dob(app, records)
    matched.update(_round(records, list(range(len(records))), first, score, trace, ambiguous))
    # a wider search cannot settle a record that already has two good candidates
    rest = [i for i in range(len(records)) if i not in matched and i not in ambiguous]
    if rest:
        second, _skipped = fetch_by_year(app, [records[i] for i in rest])
        matched.update(_round(records, rest, second, score, trace, ambiguous))
    return [matched[i] for i in sorted(matched)]


def _round(
    records: list[LeakRecord],
    indices: list[int],
    cands: list[Candidate],
    score: Callable[[list[dict[str, Any]], list[dict[str, Any]]], list[dict[str, Any]]],
    trace: list[tuple[int, str, float]] | None,
    ambiguous: set[int],
) -> dict[int, FuzzyMatch]:
    if not cands or not indices:
        return {}
    left = _record_rows([records[i] for i in indices])
    right = _candidate_rows(cands)
    if not left or not right:
        return {}
    by_id = {c.patient_id: c for c in cands}
    best: dict[int, dict[str, tuple[float, list[str]]]] = defaultdict(dict)
    for p in score(left, right):
        a, b = str(p["uid_l"]), str(p["uid_r"])
        leak, pmi = (a, b) if a.startswith("L") and not b.startswith("L") else (b, a)
        if not leak.startswith("L"):
            continue
        idx = indices[int(leak[1:].split("#")[0])]
        pid = pmi.rsplit("#", 1)[0]
        prob = float(p["match_probability"])
        on = [name for col, (name, floor) in _ON.items() if _weight(p.get(col)) > floor]
        if prob > best[idx].get(pid, (0.0, []))[0]:
            best[idx][pid] = (prob, on)
    if trace is not None:
        trace.extend((idx, pid, p) for idx, opts in best.items() for pid, (p, _) in opts.items())
    out: dict[int, FuzzyMatch] = {}
    for idx, options in best.items():
        ranked = sorted(options.items(), key=lambda kv: -kv[1][0])
        pid, (prob, on) = ranked[0]
        second = ranked[1][1][0] if len(ranked) > 1 else 0.0
        if prob >= ACCEPT and second < AMBIGUOUS and pid in by_id:
            out[idx] = FuzzyMatch(idx, by_id[pid], prob, on)
        elif second >= AMBIGUOUS:
            ambiguous.add(idx)
    return out


def _weight(value: Any) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        return 0.0
    return w if w == w else 0.0  # NaN for null levels
