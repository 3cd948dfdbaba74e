"""What a column holds, from its header (English or Chinese) and, failing that, its values.

A leaked spreadsheet rarely uses the PMI's column names: ``Patient Name``, ``姓名``,
``身份證號碼``, ``HKID No.``, ``檔案編號``, ``手術``. :func:`category_for_header` maps a
header to one of the categories in :data:`CATEGORIES`; :func:`infer_columns` falls back to the
values for headers it does not know (or for files without a header row), so a column of
HKIDs is found whatever it is called.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

CATEGORIES = (
    "hkid",
    "hospital_no",
    "name_en",
    "name_zh",
    "name",
    "sex",
    "dob",
    "phone",
    "procedure",
    "address",
)
# The data fields of spec §3.2 ``fields_exposed`` each category reveals.
EXPOSED_FIELD = {
    "hkid": "hkid",
    "hospital_no": "hospital_no",
    "name_en": "name",
    "name_zh": "name",
    "name": "name",
    "sex": "sex",
    "dob": "dob",
    "phone": "phone",
    "procedure": "procedure",
    "address": "address",
}

# Ordered: the first keyword found in the normalised header wins, so the more specific
# phrases come before the words they contain ("身份證號碼" before "號碼", "name_zh" before "name").
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "hkid",
        (
            "hkid",
            "hkic",
            "idcard",
            "identitycard",
            "identity",
            "idno",
            "idnumber",
            "身份證",
            "身分證",
            "身份证",
            "證件",
            "证件",
            "nationalid",
            "docno",
        ),
    ),
    (
        "hospital_no",
        (
            "hospitalno",
            "hospitalnumber",
            "hospno",
            "hosp",
            "fileno",
            "filenumber",
            "mrn",
            "medicalrecord",
            "caseno",
            "檔案編號",
            "档案编号",
            "病歷",
            "病历",
            "病人編號",
            "醫院編號",
            "住院號",
            "hn",
        ),
    ),
    ("dob", ("dob", "dateofbirth", "birthdate", "birthday", "born", "出生", "生日")),
    ("sex", ("sex", "gender", "性別", "性别")),
    (
        "phone",
        (
            "phone",
            "mobile",
            "tel",
            "contactno",
            "cell",
            "電話",
            "电话",
            "手機",
            "手机",
            "聯絡",
            "联系",
        ),
    ),
    (
        "procedure",
        (
            "procedure",
            "operation",
            "surgery",
            "surgical",
            "optype",
            "opname",
            "手術",
            "手术",
            "術式",
            "治療",
            "治疗",
        ),
    ),
    ("address", ("address", "addr", "住址", "地址")),
    ("name_zh", ("namezh", "chinesename", "chiname", "cname", "中文姓名", "中文名")),
    ("name_en", ("nameen", "englishname", "engname", "ename", "英文姓名", "英文名")),
    ("name", ("name", "patient", "surname", "姓名", "名字", "病人", "患者")),
)

_DROP = re.compile(r"[\s_\-.:：/()（）\[\]#]+")


def _norm(header: str) -> str:
    return _DROP.sub("", unicodedata.normalize("NFKC", header).lower())


def category_for_header(header: str) -> str | None:
    h = _norm(header)
    if not h:
        return None
    if h in {"id", "patientid", "pid", "key", "no", "seq", "row"}:
        return None  # an internal key or a row number, not an identifier of a person
    for cat, words in _KEYWORDS:
        if cat == "hospital_no" and h == "hn":
            return cat
        if any(w in h for w in words if w != "hn"):
            return cat
    return None


def looks_like_header(cells: Sequence[str], value_kind: Callable[[str], str | None]) -> bool:
    """A first row is a header when no cell looks like an identifier, a date or a phone, and
    at least one cell names a known category or all cells are short words."""
    if not cells:
        return False
    if any(value_kind(c) in {"hkid", "hospital_no", "dob", "phone"} for c in cells if c):
        return False
    if any(category_for_header(c) for c in cells):
        return True
    return all(c and len(c) <= 40 and not any(ch.isdigit() for ch in c) for c in cells)


def infer_columns(
    header: Sequence[str] | None,
    sample: Sequence[Sequence[str]],
    value_kind: Callable[[str], str | None],
) -> list[str | None]:
    """One category (or ``None``) per column.

    A known header decides, except that a generic ``name`` column is split into English and
    Chinese by its values. Unknown columns get the category that at least 60% of their
    non-empty sample values have.
    """
    width = max([len(header or ())] + [len(r) for r in sample]) if (header or sample) else 0
    cats: list[str | None] = []
    for i in range(width):
        from_header = category_for_header(header[i]) if header and i < len(header) else None
        values = [r[i].strip() for r in sample if i < len(r) and r[i] and r[i].strip()]
        kinds = [value_kind(v) for v in values]
        if from_header == "name":
            zh = sum(k == "name_zh" for k in kinds)
            from_header = "name_zh" if values and zh >= 0.6 * len(values) else "name_en"
        if from_header is None and values:
            best = max(set(kinds), key=kinds.count)
            if best is not None and kinds.count(best) >= 0.6 * len(values):
                from_header = best
        cats.append(from_header)
    return cats
