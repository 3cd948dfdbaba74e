"""Hong Kong names for the synthetic hospital: Cantonese romanisation, Chinese characters.

A Chinese name is a surname and one or two given-name characters. The English (registered)
name is written surname first in capitals, then the romanised given name in one of the
spellings people actually have on their identity cards: ``CHAN Tai Man``, ``CHAN Tai-man``,
``CHAN Taiman``, sometimes followed by an English name (``CHAN Tai Man Peter``). The Chinese
name is the characters without spaces (``陳大文``). A few residents have non-Chinese names
(``SANTOS Maria Cristina``) and no Chinese name.

Names are kept as small integer codes per person (surname, two given characters, spelling
style, English name) so that millions of people cost a few bytes each; strings are rendered
with Arrow kernels only for the rows being written.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STYLE_SPACE, STYLE_HYPHEN, STYLE_JOINED = 0, 1, 2
_SEPARATORS = pa.array([" ", "-", ""])


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("phiguard.demo").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@dataclass(frozen=True)
class NameTables:
    sur_en: pa.Array  # Chinese surnames first, then non-Chinese ones
    sur_zh: pa.Array  # null for non-Chinese surnames
    sur_weight: np.ndarray  # Chinese surnames only
    n_chinese: int
    given_variants: pa.Array  # title case (Tai) then lower case (tai)
    given_zh: pa.Array
    n_given: int
    given_by_sex: tuple[np.ndarray, np.ndarray]  # candidate indices for M, F
    given_w_by_sex: tuple[np.ndarray, np.ndarray]
    english: pa.Array
    english_by_sex: tuple[np.ndarray, np.ndarray]
    foreign_given: pa.Array
    foreign_sur_of: np.ndarray  # surname index for each foreign name row
    foreign_by_sex: tuple[np.ndarray, np.ndarray]

    def surname_index(self, en: str) -> np.ndarray:
        """Indices of every Chinese surname romanised as ``en`` (e.g. both 黃 and 王 for WONG)."""
        values = self.sur_en.to_pylist()[: self.n_chinese]
        return np.array([i for i, v in enumerate(values) if v == en], dtype=np.int64)


@cache
def tables() -> NameTables:
    surnames = _rows("surnames.csv")
    given = _rows("given.csv")
    english = _rows("english.csv")
    foreign = _rows("nonchinese.csv")
    foreign_sur = sorted({r["surname"] for r in foreign})
    n_cn = len(surnames)
    sur_en = [r["en"] for r in surnames] + foreign_sur
    sur_zh: list[str | None] = [r["zh"] for r in surnames] + [None] * len(foreign_sur)
    g_en = [r["en"] for r in given]
    g_sex = np.array([r["sex"] for r in given])
    g_w = np.array([float(r["weight"]) for r in given])
    male = np.flatnonzero(g_sex != "F")
    female = np.flatnonzero(g_sex != "M")
    e_sex = np.array([r["sex"] for r in english])
    f_sex = np.array([r["sex"] for r in foreign])
    return NameTables(
        sur_en=pa.array(sur_en),
        sur_zh=pa.array(sur_zh, pa.string()),
        sur_weight=np.array([float(r["weight"]) for r in surnames]),
        n_chinese=n_cn,
        given_variants=pa.array(g_en + [g.lower() for g in g_en]),
        given_zh=pa.array([r["zh"] for r in given]),
        n_given=len(given),
        given_by_sex=(male, female),
        given_w_by_sex=(g_w[male], g_w[female]),
        english=pa.array([r["en"] for r in english]),
        english_by_sex=(np.flatnonzero(e_sex == "M"), np.flatnonzero(e_sex == "F")),
        foreign_given=pa.array([r["given"] for r in foreign]),
        foreign_sur_of=np.array([n_cn + foreign_sur.index(r["surname"]) for r in foreign]),
        foreign_by_sex=(np.flatnonzero(f_sex == "M"), np.flatnonzero(f_sex == "F")),
    )


@dataclass
class NameParts:
    """Integer codes of ``n`` names. ``given1`` indexes the foreign table for foreign names."""

    surname: np.ndarray  # int16
    given1: np.ndarray  # int16
    given2: np.ndarray  # int16, -1 = single-character given name
    style: np.ndarray  # int8
    english: np.ndarray  # int16, -1 = none
    foreign: np.ndarray  # bool

    def take(self, idx: np.ndarray) -> NameParts:
        return NameParts(*(getattr(self, f)[idx] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[NameParts]) -> NameParts:
        return NameParts(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("surname", "given1", "given2", "style", "english", "foreign")


def _pick(rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray | None, n: int):
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if weights is None:
        return candidates[rng.integers(0, len(candidates), n)]
    cum = np.cumsum(weights)
    return candidates[np.searchsorted(cum, rng.random(n) * cum[-1], side="right")]


def sample_names(
    rng: np.random.Generator,
    sex: np.ndarray,
    *,
    surname: np.ndarray | None = None,
    foreign_rate: float = 0.04,
) -> NameParts:
    """Names for people of the given ``sex`` (0 M, 1 F, 2 U); ``surname`` fixes surnames.

    Where ``surname`` is given (family members), a foreign surname keeps the person foreign.
    """
    t = tables()
    n = len(sex)
    female = sex == 1
    if surname is None:
        foreign = rng.random(n) < foreign_rate
        sur = _pick(rng, np.arange(t.n_chinese), t.sur_weight, n)
    else:
        sur = surname.astype(np.int64)
        foreign = sur >= t.n_chinese
    g1 = np.empty(n, dtype=np.int64)
    g2 = np.empty(n, dtype=np.int64)
    eng = np.full(n, -1, dtype=np.int64)
    for s, mask in ((0, ~female), (1, female)):
        k = int(mask.sum())
        g1[mask] = _pick(rng, t.given_by_sex[s], t.given_w_by_sex[s], k)
        g2[mask] = _pick(rng, t.given_by_sex[s], t.given_w_by_sex[s], k)
        with_english = mask & (rng.random(n) < 0.07)
        eng[with_english] = _pick(rng, t.english_by_sex[s], None, int(with_english.sum()))
        fmask = mask & foreign
        fk = int(fmask.sum())
        if fk:
            rows = _pick(rng, t.foreign_by_sex[s], None, fk)
            g1[fmask] = rows
            if surname is None:
                sur[fmask] = t.foreign_sur_of[rows]
    single = rng.random(n) < 0.12
    g2[single | foreign] = -1
    eng[foreign] = -1
    style = np.where(
        rng.random(n) < 0.68,
        STYLE_SPACE,
        np.where(rng.random(n) < 0.75, STYLE_HYPHEN, STYLE_JOINED),
    )
    return NameParts(
        surname=sur.astype(np.int16),
        given1=g1.astype(np.int16),
        given2=g2.astype(np.int16),
        style=style.astype(np.int8),
        english=eng.astype(np.int16),
        foreign=foreign,
    )


def render_names(parts: NameParts) -> tuple[pa.Array, pa.Array]:
    """``(name_en, name_zh)`` Arrow string arrays; ``name_zh`` is null for foreign names."""
    t = tables()
    foreign = parts.foreign
    sur_en = t.sur_en.take(pa.array(parts.surname.astype(np.int32)))
    g1 = np.where(foreign, 0, parts.given1).astype(np.int32)
    g2 = parts.given2.astype(np.int32)
    no_g2 = g2 < 0
    g2_variant = np.where(no_g2, 0, g2 + t.n_given * (parts.style > 0)).astype(np.int32)
    g1_en = t.given_variants.take(pa.array(g1))
    g2_en = t.given_variants.take(pa.array(g2_variant, mask=no_g2))
    sep = _SEPARATORS.take(pa.array(parts.style.astype(np.int32)))
    given_cn = pc.binary_join_element_wise(g1_en, g2_en, sep, null_handling="skip")
    given_fg = t.foreign_given.take(pa.array(np.where(foreign, parts.given1, 0).astype(np.int32)))
    given = pc.if_else(pa.array(foreign), given_fg, given_cn)
    eng = t.english.take(
        pa.array(np.maximum(parts.english, 0).astype(np.int32), mask=parts.english < 0)
    )
    name_en = pc.binary_join_element_wise(sur_en, given, eng, " ", null_handling="skip")
    sur_zh = t.sur_zh.take(pa.array(parts.surname.astype(np.int32)))
    g1_zh = t.given_zh.take(pa.array(g1))
    g2_zh = t.given_zh.take(pa.array(np.maximum(g2, 0), mask=no_g2))
    name_zh = pc.binary_join_element_wise(sur_zh, g1_zh, g2_zh, "", null_handling="skip")
    name_zh = pc.if_else(pa.array(foreign), pa.scalar(None, pa.string()), name_zh)
    return name_en, name_zh


def surname_en(parts: NameParts) -> list[str]:
    return tables().sur_en.take(pa.array(parts.surname.astype(np.int32))).to_pylist()
