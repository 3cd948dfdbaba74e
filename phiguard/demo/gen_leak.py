"""The leaked dump of the seed scenario, as it surfaced on a third-party platform.

``OUT/leak/dump.csv`` has the columns the April 2026 leak exposed — name, sex, HKID, hospital
file number, surgical procedure — under the headers a person pasting a spreadsheet would
write (``Name,Sex,HKID,Hospital No,Procedure``). It is messy on purpose: HKIDs in several
spellings (``A123456(3)``, ``A1234563``, ``A123456 3``, lower case, full-width brackets), a
few with a corrupted check character, some missing; a handful of patients the contractor had
looked up earlier inside its grant; and a dozen made-up people who are in no PMI, with
well-formed identifiers that must never be linked to anyone.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phiguard.demo.gen_common import S_DUMP, patient_id, rng_for
from phiguard.demo.gen_names import render_names, sample_names
from phiguard.demo.gen_people import (
    HKID_PREFIXES,
    Population,
    render_hkids,
    render_hospital_nos,
)

HEADER = ("Name", "Sex", "HKID", "Hospital No", "Procedure")
FIELDS_EXPOSED = ["name", "sex", "hkid", "hospital_no", "procedure"]
FAKE_RECORDS = 12
CORRUPTED_HKIDS = 11


@cache
def procedures() -> tuple[str, ...]:
    """The surgical procedure vocabulary shipped in ``phiguard/demo/data/procedures.txt``."""
    text = resources.files("phiguard.demo").joinpath("data", "procedures.txt").read_text("utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _spell(bare: list[str | None], rng: np.random.Generator) -> list[str]:
    """Mixed spellings of ``A1234563``-style HKIDs."""
    out = []
    u = rng.random(len(bare))
    for h, x in zip(bare, u, strict=True):
        if h is None:
            out.append("")
            continue
        body, check = h[:-1], h[-1]
        if x < 0.55:
            out.append(f"{body}({check})")
        elif x < 0.80:
            out.append(h)
        elif x < 0.90:
            out.append(f"{body} {check}")
        elif x < 0.97:
            out.append(f"{body}({check})".lower())
        else:
            out.append(f"{body}（{check}）")
    return out


def write_dump(
    out: Path,
    pop: Population,
    exported: np.ndarray,
    earlier: np.ndarray,
    *,
    seed: int,
    query_id: str,
    account_id: str,
    vendor_id: str,
) -> dict[str, Any]:
    """Write ``out/leak/dump.csv``; return its label (who is in it, what is wrong with it)."""
    rng = rng_for(seed, S_DUMP)
    extra = np.setdiff1d(np.unique(earlier), exported)[:10]
    rows = exported.copy()
    if len(extra):
        rows = np.insert(rows, np.sort(rng.integers(0, len(rows) + 1, len(extra))), extra)
    n = len(rows)
    name_en, _ = render_names(pop.names.take(rows))
    sex = pa.array(["M", "F", "U"]).take(pa.array(pop.sex[rows].astype(np.int32)))
    bare = render_hkids(pop.hkid[rows], style="bare").to_pylist()
    corrupted = (
        [
            int(i)
            for i in rng.choice(
                np.flatnonzero(pop.hkid[rows] >= 0), min(CORRUPTED_HKIDS, n), replace=False
            )
        ]
        if n
        else []
    )
    for i in corrupted:
        h = bare[i]
        assert h is not None
        right = h[-1]
        wrong = "0123456789A"[("0123456789A".index(right) + 1 + int(rng.integers(0, 10))) % 11]
        bare[i] = h[:-1] + wrong
    hn = render_hospital_nos(pop.hn_serial[rows])
    vocab = procedures()
    proc = [vocab[i] for i in rng.integers(0, len(vocab), n)]
    records = list(
        zip(
            name_en.to_pylist(),
            sex.to_pylist(),
            _spell(bare, rng),
            hn.to_pylist(),
            proc,
            strict=True,
        )
    )
    # Made-up people: well-formed identifiers that belong to nobody in the PMI.
    fake_sex = rng.integers(0, 2, FAKE_RECORDS).astype(np.int8)
    fake_names, _ = render_names(sample_names(rng, fake_sex))
    n_one_letter = sum(len(p) == 1 for p in HKID_PREFIXES)
    candidates = rng.integers(0, n_one_letter * 1_000_000, FAKE_RECORDS * 4)
    candidates = candidates[~np.isin(candidates, pop.hkid)]
    codes = np.unique(candidates)[:FAKE_RECORDS]
    fake_hkids = render_hkids(rng.permutation(codes), style="bare").to_pylist()
    serials = rng.integers(0, 100_000_000, FAKE_RECORDS * 4)
    serials = np.unique(serials[~np.isin(serials, pop.hn_serial)])[:FAKE_RECORDS]
    fake_hn = render_hospital_nos(rng.permutation(serials)).to_pylist()
    for i in range(FAKE_RECORDS):
        pos = int(rng.integers(0, len(records) + 1))
        records.insert(
            pos,
            (
                fake_names[i].as_py(),
                "MF"[fake_sex[i]],
                _spell([fake_hkids[i]], rng)[0],
                fake_hn[i],
                vocab[int(rng.integers(0, len(vocab)))],
            ),
        )
    path = out / "leak" / "dump.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(records)
    has_hkid = int((pop.hkid[rows] >= 0).sum())
    return {
        "path": "leak/dump.csv",
        "format": "csv",
        "header": list(HEADER),
        "fields_exposed": FIELDS_EXPOSED,
        "records": len(records),
        "account_id": account_id,
        "vendor_id": vendor_id,
        "query_id": query_id,
        "patient_count": n,
        "patient_ids": [patient_id(int(i)) for i in np.sort(rows)],
        "from_export": len(exported),
        "not_in_export_patient_ids": [patient_id(int(i)) for i in extra],
        "unmatched_records": FAKE_RECORDS,
        "hkid_valid": has_hkid - len(corrupted) + FAKE_RECORDS,
        "hkid_invalid": len(corrupted),
        "hkid_missing": n - has_hkid,
        "corrupted_hkid_patient_ids": sorted(patient_id(int(rows[i])) for i in corrupted),
        "hospital_no": len(records),
    }
