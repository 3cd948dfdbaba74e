"""Detectors: turn a leaked row or a line of prose into a :class:`LeakRecord`.

Each detector knows the field category it reveals (``hkid``, ``hospital_no``, ``name_en``,
``name_zh``, ``sex``, ``dob``, ``phone``, ``procedure``, ``address``), so the scan can say
exactly which fields a dump exposes. Structured rows are read column by column using the
categories from :mod:`phiguard.leaks.headers`; free text (a forum paste, a PDF page, an
unknown column) is searched with patterns and the shipped vocabularies (surnames, surgical
procedures in ``phiguard/leaks/data``).

Nothing here keeps a value beyond the record it builds; records live in memory for the scan.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from phiguard.errors import InputError
from phiguard.identifiers.hkid import hkid_check_char, parse_hkid
from phiguard.identifiers.hospital_no import HospitalNumberFormat

DATA = Path(__file__).parent / "data"


# -- vocabularies -------------------------------------------------------------------------
_TRADITIONAL: dict[str, str] = {}


@lru_cache(maxsize=1)
def surname_table() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(romanisation -> Chinese surnames, Chinese surname -> romanisations)."""
    by_roman: dict[str, set[str]] = {}
    by_zh: dict[str, set[str]] = {}
    simplified: dict[str, str] = {}
    for line in (DATA / "surnames.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("="):  # =simplified:traditional
            simp, trad = line[1:].split(":")
            simplified[simp.strip()] = trad.strip()
            continue
        zh, romans = line.split("|")
        for r in romans.split(","):
            r = r.strip().upper()
            by_roman.setdefault(r, set()).add(zh)
            by_roman.setdefault(r.replace("-", ""), set()).add(zh)
            by_zh.setdefault(zh, set()).add(r)
    for simp, trad in simplified.items():
        if trad in by_zh:
            by_zh[simp] = by_zh[trad]
    _TRADITIONAL.update(simplified)
    return (
        {k: frozenset(v) for k, v in by_roman.items()},
        {k: frozenset(v) for k, v in by_zh.items()},
    )


@lru_cache(maxsize=4096)
def surname_variants(surname: str) -> frozenset[str]:
    """Romanisations that may stand for the same Chinese surname: CHAN -> {CHAN, CHEN, …}.

    Accepts a romanised (any case) or a Chinese surname. An unknown surname is its own only
    variant."""
    by_roman, by_zh = surname_table()
    s = surname.strip().upper()
    zhs = by_roman.get(s) or by_roman.get(s.replace("-", "").replace(" ", ""))
    if not zhs and surname.strip() in by_zh:
        zhs = frozenset({surname.strip()})
    out = {s} if s and s.isascii() else set()
    for zh in zhs or ():
        out |= by_zh[zh]
    return frozenset(v.replace("-", "") for v in out)


def surname_roots(surname: str) -> frozenset[str]:
    """The Chinese surnames a (romanised or Chinese) surname may be; itself when unknown."""
    by_roman, by_zh = surname_table()
    s = surname.strip()
    if s in by_zh:
        return frozenset({_TRADITIONAL.get(s, s)})
    return by_roman.get(s.upper().replace("-", "").replace(" ", "")) or frozenset({s.upper()})


@dataclass(frozen=True)
class _Vocabulary:
    by_first_word: dict[str, list[tuple[str, str]]]  # first word -> [(phrase lower, canonical)]
    chinese: list[tuple[str, str]]  # (phrase, canonical), longest first
    exact: dict[str, str]  # whole value (lower) -> canonical


@lru_cache(maxsize=1)
def procedure_vocabulary() -> _Vocabulary:
    """The shipped procedure list, indexed for a scan in one pass over the words of a text
    (one big alternation regex costs a hundred tries at every character of a long line)."""
    by_first: dict[str, list[tuple[str, str]]] = {}
    chinese: list[tuple[str, str]] = []
    exact: dict[str, str] = {}
    for line in (DATA / "procedures.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        en, zh = line.split("|")
        phrase = en.strip().lower()
        by_first.setdefault(phrase.split()[0], []).append((phrase, en.strip()))
        exact[phrase] = en.strip()
        for z in zh.split(","):
            chinese.append((z.strip(), en.strip()))
            exact.setdefault(z.strip(), en.strip())
    for options in by_first.values():
        options.sort(key=lambda o: -len(o[0]))
    chinese.sort(key=lambda o: -len(o[0]))
    return _Vocabulary(by_first, chinese, exact)


_WORD = re.compile(r"[A-Za-z][A-Za-z\-]*")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


def find_procedure(text: str) -> str | None:
    """The first known procedure named in ``text`` (English or Chinese), canonical English."""
    vocab = procedure_vocabulary()
    low = None
    for m in _WORD.finditer(text):
        options = vocab.by_first_word.get(m.group(0).lower())
        if not options:
            continue
        low = low if low is not None else text.lower()
        for phrase, canonical in options:
            end = m.start() + len(phrase)
            if low.startswith(phrase, m.start()) and not (end < len(text) and text[end].isalpha()):
                return canonical
    for run in _CJK_RUN.findall(text):
        for phrase, canonical in vocab.chinese:
            if phrase in run:
                return canonical
    return None


# -- value parsers ------------------------------------------------------------------------
HKID_TEXT = re.compile(
    r"(?<![A-Za-z0-9])([A-Za-z]{1,2})\s?([0-9*Xx#]{6})\s?"
    r"(?:[(（\[]\s?([0-9Aa*Xx#])\s?[)）\]]|([0-9Aa*#]))(?![A-Za-z0-9])"
)
HN_TEXT = re.compile(r"(?<![A-Za-z0-9])HN[\s-]?\d{8}[0-9A-Z](?![A-Za-z0-9])", re.IGNORECASE)
PHONE_TEXT = re.compile(r"(?<![\d\w])(?:\+?852[\s-]?)?([4-9]\d{3})[\s-]?(\d{4})(?![\d\w])")
DATE_TEXT = re.compile(
    r"(?<!\d)(?:(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}))(?!\d)"
)
DOB_CUE = re.compile(r"(?:dob|d\.o\.b|birth|born|出生|生日)", re.IGNORECASE)
SEX_TEXT = re.compile(
    r"(?:(?<![A-Za-z])(male|female)(?![A-Za-z])|(?:sex|gender|性別|性别)\s*[:：=]?\s*([MFmf男女])"
    r"|(?<![A-Za-z])(?:,|\t|\|)\s*([MF])\s*(?:,|\t|\||$))",
    re.IGNORECASE,
)
ZH_NAME_TEXT = re.compile(r"(?<![\u4e00-\u9fff])([\u4e00-\u9fff]{2,4})(?![\u4e00-\u9fff])")
_EN_WORD = r"[A-Z][A-Za-z']*(?:-[A-Za-z]+)?"
EN_NAME_TEXT = re.compile(rf"(?<![A-Za-z])({_EN_WORD}(?:,?\s{_EN_WORD}){{1,3}})(?![A-Za-z])")
_SEX_WORDS = {
    "m": "M",
    "male": "M",
    "man": "M",
    "男": "M",
    "男性": "M",
    "f": "F",
    "female": "F",
    "woman": "F",
    "女": "F",
    "女性": "F",
    "u": "U",
    "unknown": "U",
    "不詳": "U",
}


def parse_hkid_value(text: str) -> tuple[str, str] | None:
    """('valid', canonical) | ('invalid', '') | ('masked', LIKE-pattern) | None when no HKID.

    The LIKE pattern keeps the known characters and puts ``_`` where the source masked
    one: ``A123***(3)`` -> ``A123___3``; it matches the canonical form of candidates."""
    t = text.strip()
    if not t or len(t) > 16:
        return None
    try:
        h = parse_hkid(t)
    except InputError:
        return None
    if h.masked:
        return "masked", f"{h.prefix}{h.digits.replace('*', '_')}{h.check.replace('*', '_')}"
    return ("valid", h.canonical) if h.valid else ("invalid", h.canonical)


def parse_sex(text: str) -> str | None:
    return _SEX_WORDS.get(text.strip().lower())


def parse_date(text: str) -> str | None:
    """ISO date from ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``DD/MM/YYYY`` (Hong Kong order),
    ``1980年3月12日`` or an ISO timestamp; ``None`` when it is not a plausible birth date."""
    t = text.strip()
    if not t or len(t) > 30:
        return None
    m = DATE_TEXT.search(t)
    if not m or m.start() > 0:
        return None
    if m.group(1):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        d, mo, y = int(m.group(4)), int(m.group(5)), int(m.group(6))
    try:
        value = date(y, mo, d)
    except ValueError:
        return None
    return value.isoformat() if 1890 <= y <= 2100 else None


def parse_phone(text: str) -> str | None:
    m = PHONE_TEXT.fullmatch(text.strip())
    return m.group(1) + m.group(2) if m else None


def is_chinese_name(text: str) -> bool:
    t = text.strip().replace(" ", "")
    if not (2 <= len(t) <= 4) or not all("\u4e00" <= c <= "\u9fff" for c in t):
        return False
    _, by_zh = surname_table()
    return t[0] in by_zh or t[:2] in by_zh


@dataclass(frozen=True, slots=True)
class EnglishName:
    surname: str  # upper case, no hyphen: AUYEUNG
    given: str  # upper case, joined: TAIMAN
    other: str = ""  # when the order is ambiguous ("Siu Ming Wong"): the other end's token

    @property
    def key(self) -> str:
        return f"{self.surname} {self.given}".strip()

    @property
    def token_key(self) -> str:
        """Order-free spelling (the name's letters, sorted): equal for "WONG Siu Ming" and
        "Siu Ming Wong", whichever end the reader took for the surname."""
        return "".join(sorted(self.surname + self.given))


def parse_english_name(text: str) -> EnglishName | None:
    """Surname first or last, hyphenated or joined given names: ``CHAN Tai Man``,
    ``Chan Tai-man``, ``Tai Man CHAN``, ``CHAN, Tai Man`` all give (CHAN, TAIMAN)."""
    t = unicodedata.normalize("NFKC", text).strip()
    if not t or len(t) > 80 or any(c.isdigit() for c in t):
        return None
    by_roman, _ = surname_table()
    if "," in t:
        sur, _, given = t.partition(",")
        tokens_given = given.split()
        sur_tokens = sur.split()
        if not sur_tokens:
            return None
        return EnglishName(_clean("".join(sur_tokens)), _clean("".join(tokens_given)))
    tokens = [x for x in re.split(r"\s+", t) if x]
    if not all(re.fullmatch(r"[A-Za-z][A-Za-z'\-]*", x) for x in tokens):
        return None
    if len(tokens) == 1:
        return EnglishName(_clean(tokens[0]), "")
    # two-word surnames (AU YEUNG, SZE TO)
    joined2 = _clean(tokens[0] + tokens[1])
    if len(tokens) > 2 and joined2 in by_roman:
        return EnglishName(joined2, _clean("".join(tokens[2:])))
    caps = [i for i, x in enumerate(tokens) if x.isupper() and len(x) > 1]
    mixed = [i for i, x in enumerate(tokens) if not x.isupper()]
    first_known = _clean(tokens[0]) in by_roman
    last_known = _clean(tokens[-1]) in by_roman
    other = ""
    if len(caps) == 1 and mixed:
        i = caps[0]
    elif first_known and last_known and len(tokens) > 1:
        i, other = 0, _clean(tokens[-1])  # "Siu Ming Wong" or "Wong Siu Ming": keep both
    elif first_known:
        i = 0
    elif last_known:
        i = len(tokens) - 1
    else:
        i = 0
    return EnglishName(_clean(tokens[i]), _clean("".join(tokens[:i] + tokens[i + 1 :])), other)


def _clean(s: str) -> str:
    return re.sub(r"[^A-Z]", "", s.upper())


def value_kind(text: str, hn: HospitalNumberFormat | None = None) -> str | None:
    """The category a lone value looks like (for columns whose header says nothing)."""
    t = text.strip()
    if not t:
        return None
    if parse_hkid_value(t):
        return "hkid"
    if _hn_ok(t, hn or HospitalNumberFormat()):
        return "hospital_no"
    if parse_date(t):
        return "dob"
    if parse_phone(t):
        return "phone"
    if parse_sex(t):
        return "sex"
    if is_chinese_name(t):
        return "name_zh"
    if t.lower() in procedure_vocabulary().exact or t in procedure_vocabulary().exact:
        return "procedure"
    name = parse_english_name(t)
    if name and name.given and surname_table()[0].get(name.surname):
        return "name_en"
    return None


def _hn_ok(text: str, fmt: HospitalNumberFormat) -> bool:
    try:
        fmt.normalise(text)
    except InputError:
        return False
    return True


# -- records ------------------------------------------------------------------------------
@dataclass(slots=True)
class LeakRecord:
    """One leaked person-record. Identifiers are kept only in memory, for linkage."""

    where: str
    hkid: str | None = None  # canonical, valid check character
    hkid_invalid: bool = False
    hkid_masked: str | None = None  # LIKE pattern, e.g. A123___3
    hkid_typo: str | None = None  # full HKID with a wrong check character (kept for fuzzy linkage)
    hospital_no: str | None = None
    hospital_no_invalid: bool = False
    name_en: EnglishName | None = None
    name_zh: str | None = None
    sex: str | None = None
    dob: str | None = None
    phone: str | None = None
    procedure: str | None = None
    fields: set[str] = field(default_factory=set)  # categories present (exposed)

    @property
    def personal(self) -> bool:
        """Carries something that identifies a person (not only a sex or a procedure)."""
        return bool(
            self.hkid
            or self.hkid_invalid
            or self.hkid_masked
            or self.hospital_no
            or self.hospital_no_invalid
            or self.name_en
            or self.name_zh
            or self.phone
        )


class Detector:
    """Builds records from rows and text for one scan (knows the hospital-number shape)."""

    def __init__(self, hn: HospitalNumberFormat) -> None:
        self.hn = hn
        self._hn_rx = (
            HN_TEXT
            if hn.pattern == r"HN\d{8}[0-9A-Z]"
            else re.compile(rf"(?<![A-Za-z0-9]){hn.pattern}(?![A-Za-z0-9])", re.IGNORECASE)
        )

    def kind(self, text: str) -> str | None:
        return value_kind(text, self.hn)

    # structured rows ------------------------------------------------------------------
    def from_row(self, where: str, cats: list[str | None], cells: list[str]) -> list[LeakRecord]:
        rec = LeakRecord(where)
        loose: list[str] = []
        for cat, raw in zip(cats, cells, strict=False):
            v = (raw or "").strip()
            if not v:
                continue
            if cat is None:
                loose.append(v)
            else:
                self._put(rec, cat, v, loose)
        extra: list[LeakRecord] = []
        if loose:  # unknown columns: search them like prose
            found = self.from_text(where, " , ".join(loose))
            if len(found) == 1 and not (rec.hkid or rec.hkid_masked or rec.hkid_invalid):
                _merge(rec, found[0])
            elif found:
                for f in found:
                    if f.hkid or f.hospital_no:
                        extra.append(f)
                    else:
                        _merge(rec, f, identifiers=False)
        return ([rec] if rec.fields else []) + extra

    def _put(self, rec: LeakRecord, cat: str, v: str, loose: list[str]) -> None:
        if cat == "hkid":
            got = parse_hkid_value(v)
            if got is None:
                loose.append(v)
                return
            rec.fields.add("hkid")
            kind, value = got
            if kind == "valid":
                rec.hkid = value
            elif kind == "masked":
                rec.hkid_masked = value
            else:
                rec.hkid_invalid = True
                rec.hkid_typo = value
        elif cat == "hospital_no":
            rec.fields.add("hospital_no")
            try:
                rec.hospital_no = self.hn.normalise(v)
            except InputError:
                rec.hospital_no_invalid = True
        elif cat in {"name_en", "name_zh", "name"}:
            if is_chinese_name(v) or (cat == "name_zh" and _is_cjk(v)):
                rec.name_zh = v.replace(" ", "")
                rec.fields.add("name_zh")
            else:
                name = parse_english_name(v)
                if name:
                    rec.name_en = name
                    rec.fields.add("name_en")
                elif _is_cjk(v):
                    rec.name_zh = v.replace(" ", "")
                    rec.fields.add("name_zh")
        elif cat == "sex":
            s = parse_sex(v)
            if s:
                rec.sex = s
                rec.fields.add("sex")
        elif cat == "dob":
            d = parse_date(v) or parse_date(v.split()[0] if v.split() else v)
            if d:
                rec.dob = d
                rec.fields.add("dob")
        elif cat == "phone":
            p = parse_phone(v)
            if p:
                rec.phone = p
            rec.fields.add("phone")
        elif cat == "procedure":
            rec.procedure = v
            rec.fields.add("procedure")
        elif cat == "address":
            rec.fields.add("address")

    # prose ----------------------------------------------------------------------------
    def from_text(self, where: str, text: str) -> list[LeakRecord]:
        """Records in a line of free text: one per identifier when a line holds several."""
        ids: list[tuple[int, int, str, str]] = []  # (start, end, kind, value)
        for m in HKID_TEXT.finditer(text):
            got = parse_hkid_value(m.group(0))
            if got:
                ids.append((m.start(), m.end(), "hkid_" + got[0], got[1]))
        for m in self._hn_rx.finditer(text):
            try:
                ids.append((m.start(), m.end(), "hn", self.hn.normalise(m.group(0))))
            except InputError:
                ids.append((m.start(), m.end(), "hn_invalid", ""))
        ids.sort()
        if len(ids) > 1 and not _same_person(ids):
            # split the line between identifiers so that each person keeps their own context:
            # at a separator in the gap if there is one, else on the side the names are on
            names_first = _has_name(text[: ids[0][0]])
            cuts = [0]
            for (_, end, _, _), (start, _, _, _) in pairwise(ids):
                seps = list(_SEPARATOR.finditer(text, end, start))
                cuts.append(seps[-1].end() if seps else end if names_first else start)
            cuts.append(len(text))
            out = []
            for i, ident in enumerate(ids):
                out.extend(self._text_record(where, text[cuts[i] : cuts[i + 1]], [ident]))
            return out
        return self._text_record(where, text, ids)

    def _text_record(
        self, where: str, text: str, ids: list[tuple[int, int, str, str]]
    ) -> list[LeakRecord]:
        rec = LeakRecord(where)
        for _, _, kind, value in ids:
            if kind == "hkid_valid":
                rec.hkid = value
            elif kind == "hkid_masked":
                rec.hkid_masked = value
            elif kind == "hkid_invalid":
                rec.hkid_invalid = True
                rec.hkid_typo = value
            elif kind == "hn":
                rec.hospital_no = value
            else:
                rec.hospital_no_invalid = True
            rec.fields.add("hkid" if kind.startswith("hkid") else "hospital_no")
        scrubbed = HKID_TEXT.sub(" ", self._hn_rx.sub(" ", text))
        for m in PHONE_TEXT.finditer(scrubbed):
            rec.phone = m.group(1) + m.group(2)
            rec.fields.add("phone")
            break
        for m in DATE_TEXT.finditer(scrubbed):
            d = parse_date(m.group(0))
            cue = DOB_CUE.search(scrubbed[max(0, m.start() - 24) : m.start()])
            if d and (cue or rec.personal):
                rec.dob = d
                rec.fields.add("dob")
                break
        for m in SEX_TEXT.finditer(scrubbed):
            s = parse_sex(next(g for g in m.groups() if g))
            if s:
                rec.sex = s
                rec.fields.add("sex")
                break
        for m in ZH_NAME_TEXT.finditer(scrubbed):
            cand = m.group(1)
            if not is_chinese_name(cand[:3]):
                continue
            if len(cand) > 3 and not is_chinese_name(cand):
                cand = cand[:3]
            rec.name_zh = cand
            rec.fields.add("name_zh")
            break
        by_roman = surname_table()[0]
        for m in EN_NAME_TEXT.finditer(scrubbed):
            name = parse_english_name(m.group(1).replace(",", ""))
            if name and name.given and name.surname in by_roman:
                rec.name_en = name
                rec.fields.add("name_en")
                break
        proc = find_procedure(scrubbed)
        if proc:
            rec.procedure = proc
            rec.fields.add("procedure")
        # in prose a phone number or a date alone is not a patient record (an ad, a pizza order)
        anchored = rec.personal and (
            rec.name_en or rec.name_zh or "hkid" in rec.fields or "hospital_no" in rec.fields
        )
        return [rec] if anchored else []


_SEPARATOR = re.compile(r"[;|,\t，、；]| and | & ")


def _same_person(ids: list[tuple[int, int, str, str]]) -> bool:
    """One HKID and one hospital number on a line belong to the same person."""
    kinds = [k.split("_")[0] for _, _, k, _ in ids]
    return len(ids) == 2 and sorted(kinds) == ["hkid", "hn"]


def _has_name(text: str) -> bool:
    by_roman = surname_table()[0]
    for m in EN_NAME_TEXT.finditer(text):
        name = parse_english_name(m.group(1).replace(",", ""))
        if name and name.given and name.surname in by_roman:
            return True
    return any(is_chinese_name(m.group(1)[:3]) for m in ZH_NAME_TEXT.finditer(text))


def _merge(rec: LeakRecord, other: LeakRecord, *, identifiers: bool = True) -> None:
    for name in ("name_en", "name_zh", "sex", "dob", "phone", "procedure"):
        if getattr(rec, name) is None and getattr(other, name) is not None:
            setattr(rec, name, getattr(other, name))
    if identifiers:
        for name in ("hkid", "hkid_masked", "hospital_no"):
            if getattr(rec, name) is None and getattr(other, name) is not None:
                setattr(rec, name, getattr(other, name))
        rec.hkid_invalid = rec.hkid_invalid or other.hkid_invalid
        rec.hospital_no_invalid = rec.hospital_no_invalid or other.hospital_no_invalid
        rec.fields |= other.fields
    else:
        rec.fields |= other.fields - {"hkid", "hospital_no"}


def _is_cjk(v: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in v)


def check_char(prefix: str, digits: str) -> str:
    """Re-exported for the canary generator and tests."""
    return hkid_check_char(prefix, digits)
